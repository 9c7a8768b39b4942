"""Tests of qdqforge.runtime.converters: each op family against onnxruntime."""
