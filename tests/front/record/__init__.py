"""Tests of qdqforge.front.record: record files and their checks."""
