"""Tests of qdqforge.front.save: verification of the saved models (saving: tests/integration)."""
