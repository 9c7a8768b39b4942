"""Plain tensor functions the emitted fx code calls (fake quantization, ONNX-only semantics)."""
