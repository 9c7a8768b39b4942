"""Tests of qdqforge.front.export: exporters, cache, module names, fix-ups."""
