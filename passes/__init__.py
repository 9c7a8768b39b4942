"""Graph passes. Importing this package registers the built-in passes (explicit list below)."""

from __future__ import annotations

from qdqforge.passes.base import GraphPass, PassContext, PassResult
from qdqforge.passes.registry import all_passes, get_pass, register_pass

__all__ = ["GraphPass", "PassContext", "PassResult", "all_passes", "get_pass", "register_pass"]
