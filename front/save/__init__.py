"""Saving: the fake-quant, QDQ and deploy ONNX of a PTQ or QAT model, and their verification."""
