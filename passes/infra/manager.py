"""Run passes in order with instruments around each one.

Failures are wrapped as ``pass 'x' (#3) failed after a, b; graph before the pass dumped to ...``
with the original exception chained. A user-facing error a pass raises on purpose (any
``QdqforgeError`` but PassError: QuantizationError, CalibrationError, ...) keeps its class and
gets that text as a note. Instruments follow TVM's PassInstrument names.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from qdqforge.errors import PassError, QdqforgeError
from qdqforge.gc_pause import gc_paused
from qdqforge.graph.check import validate
from qdqforge.graph.ir import Graph
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult

log = logging.getLogger(__name__)


class Instrument(Protocol):
    def run_before_pass(self, graph: Graph, p: GraphPass, idx: int) -> None: ...

    def run_after_pass(self, graph: Graph, p: GraphPass, idx: int, result: PassResult) -> None: ...

    def run_after_failure(
        self, graph: Graph, p: GraphPass, idx: int, exc: BaseException
    ) -> str | None: ...


class PassManager:
    """Run ``passes`` over a graph; ``check_after_each`` validates invariants after each."""

    def __init__(
        self,
        passes: Sequence[GraphPass],
        *,
        instruments: Sequence[Instrument] = (),
        check_after_each: bool = True,
    ) -> None:
        self.passes = list(passes)
        self.instruments = list(instruments)
        self.check_after_each = check_after_each

    def __call__(self, graph: Graph, ctx: PassContext | None = None) -> PassResult:
        ctx = ctx or PassContext()
        modified, stats = False, {}
        with gc_paused():
            for idx, p in enumerate(self.passes):
                result = self._run_one(graph, ctx, p, idx)
                graph, modified = result.graph, modified or result.modified
                stats.update({f"{p.name}.{k}": v for k, v in result.stats.items()})
        return PassResult(graph, modified, stats)

    def _run_one(self, graph: Graph, ctx: PassContext, p: GraphPass, idx: int) -> PassResult:
        for inst in self.instruments:
            inst.run_before_pass(graph, p, idx)
        try:
            result = p(graph, ctx)
            if self.check_after_each:
                validate(result.graph, run_checker=False)
        except Exception as e:
            self._fail(graph, p, idx, e)
        log.info("pass %s: modified=%s %s", p.name, result.modified, dict(result.stats))
        for inst in self.instruments:
            inst.run_after_pass(result.graph, p, idx, result)
        return result

    def _fail(self, graph: Graph, p: GraphPass, idx: int, exc: Exception):
        where = [inst.run_after_failure(graph, p, idx, exc) for inst in self.instruments]
        dumped = next((w for w in where if w), None)
        before = ", ".join(q.name for q in self.passes[:idx]) or "nothing"
        msg = f"pass {p.name!r} (#{idx}) failed after {before}: {exc}"
        if dumped:
            msg += f"; graph before the pass dumped to {dumped}"
        if isinstance(exc, QdqforgeError) and not isinstance(exc, PassError):
            exc.add_note(msg)  # a user-facing error (e.g. QuantizationError) keeps its class
            raise exc
        raise PassError(msg) from exc
