"""One export per model per flow: exported graphs reused while nothing they depend on changed.

Every public entry point (``create_quant_config``, ``create_quant_retrain_config``,
``quantize_preprocess``, ``quantize_model``, ``create_quant_retrain_model``, ``analyze`` and
:func:`qdqforge.export` itself) exports through :func:`qdqforge.front.export.to_onnx.export`, which
asks this cache first. The key is the SHA-256 of:

* the model (:func:`qdqforge.front.export.fingerprint.model_fingerprint`): its module tree, the
  bytes of every parameter and buffer, every instance attribute, hooks, ``training`` flags and the
  code of its classes and functions; rehashed on every call, so in-place edits (``p.data.add_``, a
  numpy view, ``load_state_dict``) are seen;
* the input signature (count, shapes, dtypes, devices) and the export options.

A graph the TorchScript tracer made may depend on the input *values* (a traced branch), so its
entry also holds the values' hash and is reused only for the same values; dynamo's graphs never
depend on them.

A hit returns a fresh copy (callers rewrite graphs in place) and the cache holds no reference to
the model. It does not hold the model's weights either: initializers that are byte for byte the
model's parameters and buffers are kept as stubs and filled from the model in hand on a hit
(:mod:`.cache_weights`; the key guarantees those bytes are unchanged), so an entry holds the
graph's structure and the exporter's own constants, whatever the model's size. Models it cannot
read (:class:`~qdqforge.front.export.fingerprint.UncacheableError`) and graphs whose own
constants exceed the size limit are exported every time, as is everything when the cache is off.
Settings (read at each call):

* ``QDQFORGE_EXPORT_CACHE=0``: off.
* ``QDQFORGE_EXPORT_CACHE_MB``: the most the cached graphs may hold together, the model's
  weights not counted (default 1024; the least recently used entries go first; at most
  :data:`MAX_ENTRIES` graphs).

:func:`clear_export_cache` empties it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from qdqforge.front.export import fingerprint
from qdqforge.front.export.cache_weights import Weightless, held_weights
from qdqforge.graph.held_arrays import Held

log = logging.getLogger(__name__)

ENV_SWITCH = "QDQFORGE_EXPORT_CACHE"
ENV_LIMIT_MB = "QDQFORGE_EXPORT_CACHE_MB"
DEFAULT_LIMIT_MB = 1024
MAX_ENTRIES = 4
_VALUE_DEPENDENT = ("torchscript",)  # exporters whose graphs may depend on the input values


@dataclass
class _Entry:
    stored: Weightless
    exporter: str
    values: bytes | None  # hash of the inputs when the graph may depend on their values
    size: int


@dataclass
class CacheStats:
    """Counters since the process started (or :func:`clear_export_cache`)."""

    hits: int = 0
    misses: int = 0
    uncached: int = 0


class ExportCache:
    """LRU map from fingerprint to exported graph; see the module docstring."""

    def __init__(self) -> None:
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def key(self, model: nn.Module, args: tuple[torch.Tensor, ...], options: dict) -> bytes | None:
        """The cache key of this export, or None when it must not be cached."""
        if _limit_bytes() is None:
            self.stats.uncached += 1
            return None
        try:
            digest = fingerprint.model_fingerprint(model)
        except Exception as e:  # UncacheableError, or an attribute that fails when read
            log.info("export cache not used for %s: %s", type(model).__qualname__, e)
            self.stats.uncached += 1
            return None
        extra = f"{fingerprint.input_signature(args)}|{sorted(options.items())!r}"
        return hashlib.sha256(digest + extra.encode()).digest()

    def get(
        self, key: bytes | None, args: tuple[torch.Tensor, ...], model: nn.Module
    ) -> Held | None:
        """A copy of the cached graph for ``key`` with ``model``'s weights, its large ones held
        as arrays (:func:`~.cache_weights.held_weights`; ``held.model`` is the graph), or None
        (a miss)."""
        if key is None:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        same_values = entry is not None and (
            entry.values is None or entry.values == fingerprint.input_values(args)
        )
        held = held_weights(entry.stored, model) if same_values else None
        if held is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        log.info("export cache hit: reusing the %s exporter's graph", entry.exporter)
        return held

    def put(self, key: bytes | None, stored: Weightless, exporter: str, args) -> None:
        """Keep ``stored`` (a graph made by ``exporter`` from ``args``, without the initializers
        that are the model's tensors: :func:`~.cache_weights.weightless`) under ``key``."""
        limit = _limit_bytes()
        if key is None or limit is None:
            return
        size = stored.proto.ByteSize()
        if size > limit:
            return
        values = fingerprint.input_values(args) if exporter in _VALUE_DEPENDENT else None
        entry = _Entry(stored, exporter, values, size)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES or self._total() > limit:
                self._entries.popitem(last=False)

    def _total(self) -> int:
        return sum(entry.size for entry in self._entries.values())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.stats = CacheStats()


def _limit_bytes() -> int | None:
    """The size limit in bytes, or None when the cache is off."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    try:
        megabytes = float(os.environ.get(ENV_LIMIT_MB, DEFAULT_LIMIT_MB))
    except ValueError:
        log.warning("%s is not a number; using %d", ENV_LIMIT_MB, DEFAULT_LIMIT_MB)
        megabytes = DEFAULT_LIMIT_MB
    return int(megabytes * 2**20) if megabytes > 0 else None


CACHE = ExportCache()


def clear_export_cache() -> None:
    """Forget every cached graph (and reset :attr:`ExportCache.stats`)."""
    CACHE.clear()
