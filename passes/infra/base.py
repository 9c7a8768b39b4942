"""The pass contract: ``requires -> call -> ensures``, returning a :class:`PassResult`.

A pass rewrites a :class:`qdqforge.graph.ir.Graph` in place. "Does not apply here" is a counted
reason in ``stats`` (and a debug log line), never an exception; exceptions mean bad input or a
broken invariant. Every node a pass creates is stamped with ``graph.stamp(node, self.name, rule,
origin)`` so the diff viewer can say who made it.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from qdqforge.graph.ir import Graph


@dataclass(frozen=True)
class PassResult:
    """What a pass did: the graph, whether it changed, and counters such as ``bn_folded``."""

    graph: Graph
    modified: bool
    stats: Mapping[str, int] = field(default_factory=dict)


@dataclass
class PassContext:
    """Data shared by the passes of one pipeline run.

    Attributes:
        config: the validated quantization config (or None for plain rewrites).
        options: per-pass options, keyed by pass name.
        state: cross-pass results (e.g. calibration ranges, records).
    """

    config: Any = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    def options_for(self, name: str) -> dict[str, Any]:
        return self.options.get(name, {})


class GraphPass(abc.ABC):
    """Base class of every pass. The first docstring line is what ``passes list`` shows."""

    name: ClassVar[str]

    def requires(self, graph: Graph, ctx: PassContext) -> None:  # noqa: B027 - optional hook
        """Raise PreconditionError if the pass cannot run on ``graph``."""

    @abc.abstractmethod
    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        """Rewrite ``graph`` in place."""

    def ensures(self, graph: Graph, ctx: PassContext) -> None:  # noqa: B027 - optional hook
        """Raise PostconditionError if the pass broke a promise."""

    def __call__(self, graph: Graph, ctx: PassContext | None = None) -> PassResult:
        ctx = ctx or PassContext()
        self.requires(graph, ctx)
        result = self.call(graph, ctx)
        self.ensures(result.graph, ctx)
        return result

    @classmethod
    def summary(cls) -> str:
        """First line of the class docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
