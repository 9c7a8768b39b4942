"""Tests of qdqforge.passes.common: canonicalize, fold_bn."""
