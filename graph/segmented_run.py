"""A model over large weights run in segments, each holding only its own weights' pages and copies.

A session fed weights that view a read-only map (``numerics.session``'s ``fed``, the save-time
check of a model over 2 GB) reads each weight's pages as its node runs and hands them back only
when the run ends: at its end the run holds every weight it read (the QAT save check of a 2.3 GB
model: +1.0x the weights for its fake-quant model's run). Cut into segments
(:mod:`qdqforge.graph.segment_plan`: consecutive nodes reading at most 256 MB of mapped weights
each, a node reading more alone)::

    x -> [n1 -> n2] -> t -> [n3] -> y        segment 1: t from x; segment 2: y from t

each segment runs in its own session with the whole graph's options (optimizations off: every
node runs the kernel it runs in the whole graph on the same inputs, so the values are the same
bit for bit), and the pages of the weights it read are handed back before the next one runs.
A value crossing segments is kept while a later segment or the caller still reads it.

A session given such weights as initializers (the runtime stage's default kernels, which copy
and prepack every weight they are handed) holds a copy of all of them for its life; in segments,
each segment's session is made for one run with its own weights and dropped before the next is
made: a run holds one segment's copies (:class:`SegmentedSession`'s ``fed=False``).

A segment's session is made at its first run: a value it takes from an earlier segment is
declared with the dtype that value has (its shape left open, as the forced runs declare theirs).
Where such a value is not a tensor (a sequence, a map) the whole graph runs in one session, as
without segments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from qdqforge.graph.detached import copy_fields
from qdqforge.graph.mapped import is_mapped, release
from qdqforge.graph.segment_plan import SEGMENT_BYTES, Segment, plan_segments

log = logging.getLogger(__name__)


def mapped_bytes(weights: Mapping[str, np.ndarray]) -> int:
    """Bytes of the arrays in ``weights`` that view a read-only map (``graph.mapped``)."""
    return sum(a.nbytes for a in weights.values() if is_mapped(a))


class SegmentedSession:
    """``InferenceSession.run`` of a skeleton segment by segment (module docstring).

    ``fed``: ``weights`` are the arrays fed for the skeleton's weight inputs
    (``detached.weights_as_inputs``) and each segment's session is made once. Otherwise they
    are the data of its placeholder initializers (``detached.in_memory_initializers``), handed to
    a segment's session as it is made (``add_external_initializers``: onnxruntime copies and
    prepacks them, as a default session does) for one run only: a run holds one segment's
    copies. ``options_of`` makes the options of each session."""

    def __init__(
        self,
        skeleton: onnx.ModelProto,
        weights: dict[str, np.ndarray],
        options_of: Callable[[], ort.SessionOptions],
        budget: int = SEGMENT_BYTES,
        *,
        fed: bool = True,
    ) -> None:
        self._skeleton, self._weights, self._options_of = skeleton, weights, options_of
        self._fed = fed
        counted = is_mapped if fed else (lambda array: True)  # onnxruntime copies them all
        self._segments = plan_segments(skeleton.graph, weights, budget, counted)
        self._models: dict[tuple, bytes] = {}
        self._sessions: dict[tuple, ort.InferenceSession] = {}
        self._whole: ort.InferenceSession | None = None
        self._computed = {o for node in skeleton.graph.node for o in node.output if o}
        log.debug("%d segments over %d nodes", len(self._segments), len(skeleton.graph.node))

    @property
    def segments(self) -> list[Segment]:
        return list(self._segments)

    def run(self, output_names, input_feed, run_options=None) -> list:
        """The values of ``output_names`` (``None``: the graph's outputs), in that order."""
        names = list(output_names or [o.name for o in self._skeleton.graph.output])
        _check_outputs(self._skeleton.graph, names)
        if self._whole is None and all(n in self._computed or n in input_feed for n in names):
            values = self._run_segments(names, dict(input_feed), run_options)
            if values is not None:
                return [values[n] for n in names]
        return self._run_whole(names, dict(input_feed), run_options)

    def _run_segments(self, names, feeds, run_options) -> dict | None:
        values = dict(feeds)
        for k, segment in enumerate(self._segments):
            taken = [n for n in segment.inputs if n in values and n not in self._weights]
            if not all(isinstance(values[n], np.ndarray) for n in taken):
                log.debug("a value crossing into segment %d is not a tensor: one session", k)
                return None
            wanted = [n for n in segment.outputs if self._needed(n, k, names)]
            if not wanted:  # nothing of it is read (a dead branch): not run
                continue
            dtypes = {n: values[n].dtype for n in taken if n not in feeds}
            given = {n: values[n] for n in taken}
            values.update(
                zip(wanted, self._run_one(k, segment, dtypes, wanted, given, run_options))
            )
            for n in [n for n in values if n not in feeds and not self._needed(n, k, names)]:
                del values[n]
        return values

    def _run_one(self, k: int, segment: Segment, dtypes, wanted, given, run_options) -> list:
        weights = [n for n in segment.inputs if n in self._weights]
        try:
            if self._fed:
                session = self._fed_session(k, segment, dtypes)
                given.update({n: self._weights[n] for n in weights})
            else:
                session = self._made(self._model(k, segment, dtypes), weights)
            return session.run(wanted, given, run_options)
        finally:
            session = None  # a segment's copies of its weights go before the next is made
            for n in weights:
                release(self._weights[n])

    def _needed(self, name: str, k: int, names: Sequence[str]) -> bool:
        return name in names or any(name in s.inputs for s in self._segments[k + 1 :])

    def _model(self, k: int, segment: Segment, dtypes: dict) -> bytes:
        key = _key(k, dtypes)
        if key not in self._models:
            self._models[key] = segment_model(self._skeleton, segment, dtypes).SerializeToString()
        return self._models[key]

    def _fed_session(self, k: int, segment: Segment, dtypes: dict) -> ort.InferenceSession:
        key = _key(k, dtypes)
        if key not in self._sessions:
            self._sessions[key] = self._made(self._model(k, segment, dtypes), [])
        return self._sessions[key]

    def _made(self, model: bytes, initializers: Sequence[str]) -> ort.InferenceSession:
        weights = {n: self._weights[n] for n in initializers}
        return made_session(model, self._options_of(), weights)

    def _run_whole(self, names, feeds, run_options) -> list:
        if self._whole is None:
            held = [] if self._fed else list(self._weights)
            self._whole = self._made(self._skeleton.SerializeToString(), held)
        if self._fed:
            feeds = {**feeds, **self._weights}
        try:
            return self._whole.run(names, feeds, run_options)
        finally:
            for array in self._weights.values():
                release(array)


def _key(k: int, dtypes: Mapping[str, np.dtype]) -> tuple:
    return k, tuple(sorted((n, str(d)) for n, d in dtypes.items()))


def made_session(
    model: bytes, options: ort.SessionOptions, initializers: Mapping[str, np.ndarray]
) -> ort.InferenceSession:
    """A CPU session of ``model`` whose placeholder ``initializers`` get these arrays
    (``add_external_initializers``; ``options`` gets them added), kept alive with it: onnxruntime
    reads an array in place where it does not copy it."""
    values = [ort.OrtValue.ortvalue_from_numpy(a) for a in initializers.values()]
    if values:
        options.add_external_initializers(list(initializers), values)
    built = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    built._qdqforge_initializers = values
    return built


def segment_model(
    skeleton: onnx.ModelProto, segment: Segment, dtypes: Mapping[str, np.dtype]
) -> onnx.ModelProto:
    """``skeleton`` cut to ``segment``: its nodes, the small initializers they read, the graph
    inputs they read as declared, each value from an earlier segment as an input of its
    ``dtypes`` entry (shape open), and its outputs by name."""
    graph = skeleton.graph
    model = onnx.ModelProto()
    copy_fields(skeleton, model, skip={"graph"})  # opsets, functions, metadata
    part = model.graph
    part.name = graph.name
    part.node.extend(graph.node[i] for i in segment.nodes)
    wanted = set(segment.inputs)
    part.initializer.extend(t for t in graph.initializer if t.name in wanted)
    declared = {i.name: i for i in graph.input}
    initialized = {t.name for t in graph.initializer}
    for name in segment.inputs:
        if name in declared:
            part.input.add().CopyFrom(declared[name])
        elif name not in initialized:
            element = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtypes[name]))
            part.input.append(onnx.helper.make_tensor_value_info(name, element, None))
    part.output.extend(onnx.ValueInfoProto(name=n) for n in segment.outputs)
    return model


def _check_outputs(graph: onnx.GraphProto, names: Sequence[str]) -> None:
    declared = {o.name for o in graph.output}
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise ValueError(f"not outputs of the graph: {unknown}")
