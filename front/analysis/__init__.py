"""Analysis around PTQ: accuracy-based auto-calibration, layer sensitivity and the doctor."""
