"""Tests of qdqforge.graph.diff: matching, the diff model, JSON and HTML."""
