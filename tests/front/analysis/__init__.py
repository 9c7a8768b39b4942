"""Tests of qdqforge.front.analysis (auto-calibration end to end: tests/integration)."""
