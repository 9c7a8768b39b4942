"""Tests of qdqforge.passes.quantized: QDQ, fake-quant and integer layers."""
