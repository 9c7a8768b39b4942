"""The graph IR every pass works on, its I/O, queries, checks and onnxruntime numerics."""
