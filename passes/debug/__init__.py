"""Pass-debugging tools: per-stage dumps, numeric checks, bisect, op inventories."""
