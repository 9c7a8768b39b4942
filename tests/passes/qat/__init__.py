"""Tests of qdqforge.passes.qat: QAT fake-quant nodes, search-N, strip."""
