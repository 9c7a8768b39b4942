"""Run a named pipeline of passes over an ONNX model (the "rewrite" step of the engine)."""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from qdqforge.gc_pause import gc_paused
from qdqforge.graph import io
from qdqforge.graph.ir import Graph
from qdqforge.passes.debug.instruments import instruments_from_env
from qdqforge.passes.infra.base import PassContext, PassResult
from qdqforge.passes.infra.manager import PassManager
from qdqforge.passes.infra.registry import get_pass

DEFAULT_PIPELINE = ("canonicalize", "fold_bn")


def run_pipeline(
    model: onnx.ModelProto | Graph | str,
    passes: Sequence[str] = DEFAULT_PIPELINE,
    *,
    ctx: PassContext | None = None,
    instruments: Sequence = (),
    label: str | None = None,
) -> PassResult:
    """Run the passes named in ``passes`` over ``model`` (copied when it is a Graph).

    ``QDQFORGE_DEBUG_DIR`` dumps every stage into ``<dir>/NN_<label>/`` (label: the pass names
    when not given) without code changes.
    """
    graph = model.copy() if isinstance(model, Graph) else io.load(model)
    chosen = [get_pass(name)() for name in passes]
    extra = instruments_from_env(label or "-".join(passes))
    return PassManager(chosen, instruments=[*instruments, *extra])(graph, ctx)


def rewrite(
    model: onnx.ModelProto | str, passes: Sequence[str] = DEFAULT_PIPELINE, **options
) -> onnx.ModelProto:
    """Rewrite an ONNX model with ``passes``; ``options`` are per-pass option dicts by name.

    Example: ``rewrite(proto, ("canonicalize", "fold_bn"), fold_bn={"skip_layers": ["conv1"]})``.
    """
    ctx = PassContext(options=dict(options))
    with gc_paused():  # import and export touch every node too
        return io.to_proto(run_pipeline(model, passes, ctx=ctx).graph)
