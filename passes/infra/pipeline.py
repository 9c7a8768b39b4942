"""Run a named pipeline of passes over an ONNX model (the "rewrite" step of the engine)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import onnx

from qdqforge.errors import PassError
from qdqforge.gc_pause import gc_paused
from qdqforge.graph import io
from qdqforge.graph.ir import Graph
from qdqforge.passes.debug.instruments import instruments_from_env
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.manager import PassManager
from qdqforge.passes.infra.registry import get_pass

DEFAULT_PIPELINE = ("canonicalize", "fold_bn")


def run_pipeline(
    model: onnx.ModelProto | Graph | str,
    passes: Sequence[str | GraphPass] = DEFAULT_PIPELINE,
    *,
    ctx: PassContext | None = None,
    options: Mapping[str, Any] | None = None,
    instruments: Sequence = (),
    label: str | None = None,
    consume: bool = False,
) -> PassResult:
    """Run ``passes`` (registry names or pass instances) over ``model`` (copied when a Graph).

    ``consume=True``: a Graph ``model`` is rewritten in place, not copied; the caller gives it
    up. gs's copy shares the constants' arrays, so the copied-from graph kept every array a pass
    replaced (ARQ's float weights beside the quantized ones: 1x the weights more at the peak).

    ``options`` maps a pass name to its options (a dict of its ``options_type`` fields, or an
    instance of it); every entry is checked, also for passes this pipeline does not run.
    ``QDQFORGE_DEBUG_DIR`` dumps every stage into ``<dir>/NN_<label>/`` (label: the pass names
    when not given) without code changes.

    Raises:
        PassError: an unknown pass name or option key (named), options for a pass given as an
            instance, or a pass that failed.
    """
    graph = _working_graph(model, consume)
    chosen = build_passes(passes, options or {})
    extra = instruments_from_env(label or "-".join(p.name for p in chosen))
    return PassManager(chosen, instruments=[*instruments, *extra])(graph, ctx)


def _working_graph(model: onnx.ModelProto | Graph | str, consume: bool) -> Graph:
    if isinstance(model, Graph) and consume:
        return model
    with gc_paused():  # a copy or an import creates objects for every node and tensor
        return model.copy() if isinstance(model, Graph) else io.load(model)


def build_passes(passes: Sequence[str | GraphPass], options: Mapping[str, Any]) -> list[GraphPass]:
    """Instances of ``passes``, each named one constructed with its entry of ``options``."""
    built = {name: get_pass(name)(given) for name, given in options.items()}
    given_as_instances = {p.name for p in passes if isinstance(p, GraphPass)} & set(options)
    if given_as_instances:
        name = sorted(given_as_instances)[0]
        raise PassError(f"pass {name!r}: options given both in the instance and by name")
    return [p if isinstance(p, GraphPass) else built.get(p) or get_pass(p)() for p in passes]


def rewrite(
    model: onnx.ModelProto | str, passes: Sequence[str] = DEFAULT_PIPELINE, **options
) -> onnx.ModelProto:
    """Rewrite an ONNX model with ``passes``; ``options`` are per-pass option dicts by name.

    Example: ``rewrite(proto, ("canonicalize", "fold_bn"), fold_bn={"skip_layers": ["conv1"]})``.

    Raises:
        PassError: an unknown pass name or option key (named), or a pass that failed.
    """
    with gc_paused():  # import and export touch every node too
        return io.to_proto(run_pipeline(model, passes, options=options).graph)
