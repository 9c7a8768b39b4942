"""Tests of qdqforge.passes.ptq: DMQ, observers, ARQ and AdaRound weights."""
