"""Tests of qdqforge.runtime.modules: the modules the converters emit."""
