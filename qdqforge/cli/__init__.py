"""Command-line interface: ``qdqforge <command> ...`` (see :mod:`qdqforge.cli.main`)."""

from __future__ import annotations

from qdqforge.cli.main import main

__all__ = ["main"]
