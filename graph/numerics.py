"""onnxruntime as the numerical oracle: run a graph, compare stages, express errors in LSB."""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from qdqforge.graph.ir import Graph
from qdqforge.graph.mapped import release
from qdqforge.graph.segment_plan import SEGMENT_BYTES
from qdqforge.graph.segmented_run import SegmentedSession, made_session, mapped_bytes

IN_MEMORY_BYTES = 2**16  # initializers this large reach onnxruntime as arrays, not bytes
ARENA_MAX_BYTES = 2**28  # sessions over this many bytes of weights run without an arena


def session(
    model: onnx.ModelProto | Graph,
    *,
    optimize: bool = False,
    written_to: str | os.PathLike | None = None,
    prepack: bool = True,
    config: Mapping[str, str] | None = None,
    fed: bool = False,
    arena: bool | None = None,
) -> ort.InferenceSession | FedSession:
    """CPU session; graph optimizations off by default (ORT_DISABLE_ALL) so results are
    bit-comparable; ``optimize`` keeps onnxruntime's default level (ORT_ENABLE_ALL).

    Initializers of :data:`IN_MEMORY_BYTES` or more are handed to onnxruntime as arrays
    (``detached.in_memory_initializers``) instead of inside the serialized model: the same
    session (same optimizations, same results, checked bit for bit in tests/graph), built 3-7x
    faster on weight-heavy models (ResNet-18: 0.33 s -> 0.05 s) and without the serialized
    copy of the weights. Placeholders of a ``held_arrays.Held`` model get its arrays, read in
    place. The arrays live as long as the session. ``written_to``: the path
    onnxruntime writes the graph it runs to (``optimized_model_filepath``). ``prepack=False``:
    the kernels do not repack constant weights into their own layouts (a copy of every weight
    and about half of a session's set-up on weight-heavy models: 0.60 GB MLP 1.9 s -> 1.0 s;
    runs take longer and Gemm/MatMul may sum in another order). ``config``: more session
    config entries (``add_session_config_entry``). ``fed`` (optimizations off): those large
    initializers become graph inputs, fed from their arrays at every run (:class:`FedSession`):
    onnxruntime copies an initializer it is handed into its own buffer when the session is
    made (a 64 MB weight: +64 MB of RSS; from a read-only map +128 MB, the pages read and the
    copy) but reads a fed array in place (+0; from a map the pages read, handed back after the
    run). ``arena``: keep onnxruntime's CPU memory arena; default
    :func:`arena_for` those large initializers. Pages of a read-only map that onnxruntime read
    while making the session are handed back once it is made. Optimizations off, over
    :data:`~qdqforge.graph.segment_plan.SEGMENT_BYTES` of weights viewing maps, fed or not, the
    session runs in segments, each made for one run with its own weights where they are not fed
    (the same values; ``SegmentedSession``).
    """
    from qdqforge.graph.detached import in_memory_initializers, weights_as_inputs
    from qdqforge.graph.held_arrays import held_arrays
    from qdqforge.graph.io import to_proto

    proto = to_proto(model) if isinstance(model, Graph) else model
    skeleton, arrays = in_memory_initializers(proto, IN_MEMORY_BYTES)
    arrays.update(held_arrays(skeleton))  # placeholders of graph.held_arrays: their arrays
    arrays = _read_by_the_graph(skeleton, arrays)
    arena = arena_for(arrays.values()) if arena is None else arena
    settings = _Settings(optimize, written_to, prepack, dict(config or {}), arena)
    segmented = not optimize and mapped_bytes(arrays) > SEGMENT_BYTES
    if fed:
        if optimize:
            raise ValueError("fed weights are graph inputs: an optimized graph folds constants")
        skeleton = weights_as_inputs(skeleton, set(arrays))
        if segmented:
            return SegmentedSession(skeleton, arrays, settings.options, SEGMENT_BYTES)
        built = ort.InferenceSession(
            skeleton.SerializeToString(), settings.options(), providers=["CPUExecutionProvider"]
        )
        return FedSession(built, arrays)
    if segmented:
        return SegmentedSession(skeleton, arrays, settings.options, SEGMENT_BYTES, fed=False)
    built = made_session(skeleton.SerializeToString(), settings.options(), arrays)
    for array in arrays.values():  # pages of a read-only map it read: back to the kernel (a
        release(array)  # later read faults them in again from the file)
    return built


@dataclasses.dataclass(frozen=True)
class _Settings:
    """What :func:`session` was asked for, as fresh ``SessionOptions`` for each session made
    (a segmented one makes several; ``add_external_initializers`` adds to the options)."""

    optimize: bool
    written_to: str | os.PathLike | None
    prepack: bool
    config: dict[str, str]
    arena: bool

    def options(self) -> ort.SessionOptions:
        opts = _quiet_options()
        if not self.optimize:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if self.written_to is not None:
            opts.optimized_model_filepath = str(self.written_to)
        if not self.prepack:
            opts.add_session_config_entry("session.disable_prepacking", "1")
        for key, value in self.config.items():
            opts.add_session_config_entry(key, value)
        opts.enable_cpu_mem_arena = self.arena
        return opts


class FedSession:
    """An onnxruntime session whose large weights are graph inputs, fed from ``weights`` at
    every :meth:`run` (:func:`session`'s ``fed``); the rest is the session's own.

    After each run, the pages of a weight that views a read-only map (external data,
    :mod:`qdqforge.graph.mapped`) are handed back: a model over 2 GB holds the pages of the run
    in progress, not those of every run so far.
    """

    def __init__(self, built: ort.InferenceSession, weights: dict[str, np.ndarray]) -> None:
        self._session, self._weights = built, weights

    def run(self, output_names, input_feed, run_options=None) -> list:
        """``InferenceSession.run`` with the weights fed beside ``input_feed``."""
        try:
            return self._session.run(output_names, {**input_feed, **self._weights}, run_options)
        finally:
            for array in self._weights.values():
                release(array)

    def __getattr__(self, name: str):
        return getattr(self._session, name)


def _read_by_the_graph(
    skeleton: onnx.ModelProto, arrays: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``arrays`` without the initializers nothing reads, whose placeholders leave
    ``skeleton`` too: onnxruntime drops an initializer that no node (of the graph or a
    subgraph) reads and that is no graph input or output before it takes the external ones,
    then refuses one given for it ("Failed to find existing initializer"); exported models
    keep such weights (``front.export.weights.add_unused_weights``: BERT's pooler when only the
    hidden states are returned)."""
    read = _names_read(skeleton.graph)
    unread = [i for i, t in enumerate(skeleton.graph.initializer) if t.name not in read]
    for index in reversed(unread):
        del skeleton.graph.initializer[index]
    return {name: array for name, array in arrays.items() if name in read}


def _names_read(graph: onnx.GraphProto) -> set[str]:
    """Every name a node of ``graph`` or of its subgraphs reads, and its inputs and outputs."""
    names = {v.name for v in graph.input} | {v.name for v in graph.output}
    for node in graph.node:
        names.update(node.input)
        for attribute in node.attribute:
            for sub in [attribute.g] if attribute.HasField("g") else attribute.graphs:
                names |= _names_read(sub)
    return names


def arena_for(weights) -> bool:
    """Whether a session over the arrays ``weights`` keeps onnxruntime's CPU memory arena.

    An arena keeps the largest buffers a run ever held (a weight dequantized to float in the
    QDQ model's run, the kernel audit's decompositions) until the session goes: the save-time
    check of a 2.3 GB model held 0.5x the weights more after such a run. Without it a freed
    buffer goes back at once (same kernels, same results), at ~8% more time per run (the save
    checks of the small test nets: 8.1-9.4 s against 7.4-8.8 s), so only from
    :data:`ARENA_MAX_BYTES` on, the weights counted as float32 (what an int8 weight becomes
    when dequantized)."""
    return sum(np.asarray(w).size * 4 for w in weights) < ARENA_MAX_BYTES


def _quiet_options() -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: onnxruntime's warnings are not the user's
    return opts


def run(model: onnx.ModelProto | Graph, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Outputs of ``model`` on ``feeds`` (input name -> array), in graph output order."""
    return session(model).run(None, dict(feeds))


def run_with_weights(
    model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray]
) -> list[np.ndarray]:
    """:func:`run` with the initializers ``weights`` fed as graph inputs from these arrays.

    onnxruntime reads a fed array in place: the session holds no copy of those tensors, and
    ``model`` is copied without their data (``detached.weights_as_inputs``). Same settings as
    :func:`run` (CPU, ORT_DISABLE_ALL); fed instead of constant, a weight is not prepacked.
    """
    from qdqforge.graph.detached import weights_as_inputs

    skeleton = weights_as_inputs(model, set(weights))
    outputs = [o.name for o in skeleton.graph.output]
    return session(skeleton).run(outputs, {**feeds, **weights})


def feeds_for(model: onnx.ModelProto | Graph, arrays) -> dict[str, np.ndarray]:
    """Map positional arrays onto the model's graph inputs (initializer inputs skipped)."""
    from qdqforge.graph.io import to_proto

    proto = to_proto(model) if isinstance(model, Graph) else model
    inits = {i.name for i in proto.graph.initializer}
    names = [i.name for i in proto.graph.input if i.name not in inits]
    return {n: np.asarray(a) for n, a in zip(names, arrays)}


def max_abs_error(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Largest absolute difference over paired outputs, never NaN.

    A NaN or infinity facing a different value (or another number of outputs, or another
    shape) is an infinite error: a divergence that every ``error > threshold`` catches, and the
    maximum does not depend on the order of the outputs. Equal values (NaN facing NaN, +inf
    facing +inf) differ by 0.
    """
    if len(a) != len(b):
        return math.inf
    return max((abs_error(x, y) for x, y in zip(a, b)), default=0.0)


def abs_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| over one pair of arrays, with :func:`max_abs_error`'s NaN/inf rule."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != y.shape:
        return math.inf
    if not x.size:
        return 0.0
    same = (x == y) | (np.isnan(x) & np.isnan(y))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(same, 0.0, np.abs(x - y))
    return float(np.where(np.isnan(diff), math.inf, diff).max())


def nonfinite_mismatch(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a NaN or infinity in ``a`` or ``b`` faces a different value (a divergence)."""
    return math.isinf(abs_error(a, b))


def error_in_lsb(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    """max |a - b| in units of the quantization step ``scale`` (NaN/inf rule as above)."""
    return abs_error(a, b) / scale


def default_session(model: onnx.ModelProto) -> ort.InferenceSession:
    """A session as ``ort.InferenceSession(path)`` makes it: CPU, every default optimization."""
    return session(model, optimize=True)


def held_optimized_graph(model: onnx.ModelProto):
    """:func:`optimized_graph` with its initializers of :data:`IN_MEMORY_BYTES` or more held
    (``held_arrays``): onnxruntime writes them to a data file, read into arrays one by one (the
    whole graph as one message was read, parsed and cut into arrays again: 0.9 s per saved
    BERT-base model). A weight the optimizer left as it was is held as ``model``'s own array
    (compared bit for bit as it is read, :func:`external.same_bits`), not as a second copy. Keep
    the returned ``Held`` while running copies of its ``model``."""
    from qdqforge.graph.external import external_arrays
    from qdqforge.graph.held_arrays import held_arrays, held_model

    with tempfile.TemporaryDirectory(prefix="qdqforge-ort-") as tmp:
        path = _write_optimized(model, Path(tmp))
        proto = onnx.load(path, load_external_data=False)
        arrays = external_arrays(proto, path.parent, known=held_arrays(model))
        return held_model(proto, arrays)


def optimized_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph onnxruntime's default session runs for ``model`` on this machine (its fusions,
    layout changes and integer kernels), as onnxruntime writes it out."""
    with tempfile.TemporaryDirectory(prefix="qdqforge-ort-") as tmp:
        return onnx.load(_write_optimized(model, Path(tmp)))


def _write_optimized(model: onnx.ModelProto, folder: Path) -> Path:
    """The optimized graph written to ``folder`` by onnxruntime, its initializers of
    :data:`IN_MEMORY_BYTES` or more in ``optimized.onnx.data`` beside it."""
    path = folder / "optimized.onnx"
    options = {
        "session.optimized_model_external_initializers_file_name": f"{path.name}.data",
        "session.optimized_model_external_initializers_min_size_in_bytes": str(IN_MEMORY_BYTES),
    }
    session(model, optimize=True, written_to=path, prepack=False, config=options)  # written
    # before kernels are made: prepacking is not in it (tests/graph/test_session_weights)
    return path
