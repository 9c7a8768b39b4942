"""Tests of qdqforge.runtime.kernels: quantization math, fake-quant and QAT kernels."""
