"""Tests of qdqforge.front.entry: input normalization and dtype checks."""
