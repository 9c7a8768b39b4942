"""Passes that write a quantized model from a record: QDQ, fake-quant, integer layers."""
