"""Shared pytest configuration for the qdqforge test suite (kept minimal; areas may append)."""

from __future__ import annotations
