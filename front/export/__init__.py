"""torch model -> ONNX: the exporters, the export cache, module names and post-export fix-ups."""
