"""Tests of qdqforge.passes.infra: the pass contract and the manager."""
