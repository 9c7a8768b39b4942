"""What every public call does with its model and ``input_data`` before a flow starts.

:mod:`.prelude` (normalize ``input_data``, refuse non-float32, export, find layers, load the
config), :mod:`.inputs`, :mod:`.model_dtype`, the batch check of returned modules
(:mod:`.input_guard`) and the example inputs kept beside the modified ONNX
(:mod:`.example_inputs`).
"""
