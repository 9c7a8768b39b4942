"""Run a model in onnxruntime with some of its intermediate tensors as extra graph outputs.

The one "expose and run" of the package (the diff's per-tensor numerics, the grid comparison of
saved models, the kernel audit and the save-time check all read intermediate tensors this way)::

    model:    x -> A -> t -> B -> y      outputs [y]
    exposed:  x -> A -> t -> B -> y      outputs [y, t]   (keep_outputs)   or   [t]

Each extra output is a name-only ``ValueInfoProto``: onnxruntime takes its type and shape from
the node that computes it. A tensor that is already an output is not added twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import onnx
import onnxruntime as ort

from qdqforge.graph import numerics

SessionFactory = Callable[[onnx.ModelProto], ort.InferenceSession]


def expose(
    model: onnx.ModelProto, names: Sequence[str], keep_outputs: bool = True
) -> onnx.ModelProto:
    """A copy of ``model`` with the tensors ``names`` as extra (or, without ``keep_outputs``,
    the only) graph outputs; ``model`` is not modified."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    _add_outputs(exposed, names, keep_outputs)
    return exposed


def run_exposed(
    model: onnx.ModelProto,
    names: Sequence[str],
    feeds: Mapping[str, np.ndarray],
    *,
    keep_outputs: bool = True,
    session_of: SessionFactory = numerics.session,
) -> dict[str, np.ndarray]:
    """``{output name: value}`` of ``model`` run on ``feeds`` with ``names`` exposed.

    The extra outputs are added to ``model`` itself while its session is built and removed
    right after (:func:`exposed_in_place`): a copy of the model (:func:`expose`) held its
    weights once more while the session read them.

    Args:
        model: the model; as it was when this returns (not to be shared with another thread
            meanwhile).
        names: tensors computed by nodes of ``model`` (or graph inputs/initializers).
        feeds: graph input name -> array.
        keep_outputs: also return the model's own outputs (first, in graph order).
        session_of: builds the session and so names its settings; default
            :func:`numerics.session` (CPU, optimizations off: ORT_DISABLE_ALL);
            :func:`numerics.default_session` runs it as ``ort.InferenceSession(path)`` does.

    Returns:
        Every output of the exposed model by name, in its graph output order.
    """
    with exposed_in_place(model, names, keep_outputs) as outputs:
        session = session_of(model)
    return dict(zip(outputs, session.run(outputs, dict(feeds))))


@contextmanager
def exposed_in_place(
    model: onnx.ModelProto, names: Sequence[str], keep_outputs: bool = True
) -> Iterator[list[str]]:
    """``model`` with the outputs :func:`expose` gives it, for the block; yields their names.

    The original outputs (small ``ValueInfoProto`` messages) are copied and put back after
    the block, so ``model`` serializes to the same bytes as before it.
    """
    original = [onnx.ValueInfoProto() for _ in model.graph.output]
    for saved, output in zip(original, model.graph.output):
        saved.CopyFrom(output)
    _add_outputs(model, names, keep_outputs)
    try:
        yield [o.name for o in model.graph.output]
    finally:
        del model.graph.output[:]
        model.graph.output.extend(original)


def _add_outputs(model: onnx.ModelProto, names: Sequence[str], keep_outputs: bool) -> None:
    if not keep_outputs:
        del model.graph.output[:]
    present = {o.name for o in model.graph.output}
    model.graph.output.extend(
        onnx.ValueInfoProto(name=n) for n in dict.fromkeys(names) if n not in present
    )
