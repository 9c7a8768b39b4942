"""Stateless torch modules the converters emit (their tensors live in the parameter store)."""

from __future__ import annotations

from qdqforge.runtime.modules.batchnorm import BatchNormOp

__all__ = ["BatchNormOp"]
