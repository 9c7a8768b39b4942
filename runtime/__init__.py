"""ONNX -> trainable torch.fx runtime: :func:`reimport` and the converter registry."""

from __future__ import annotations

from qdqforge.runtime.builder import ReimportedModule, reimport

__all__ = ["ReimportedModule", "reimport"]
