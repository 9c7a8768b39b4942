"""QAT passes: ULQ activation and weight fake-quant nodes, search-N, and stripping them again."""
