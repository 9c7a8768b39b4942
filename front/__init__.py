"""The AMCT-style front end: export, configs, records, the PTQ and QAT flows, saving, analysis."""
