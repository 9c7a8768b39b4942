"""Run a model in onnxruntime with some of its intermediate tensors as extra graph outputs.

The one "expose and run" of the package (the diff's per-tensor numerics, the grid comparison of
saved models, the kernel audit and the save-time check all read intermediate tensors this way)::

    model:    x -> A -> t -> B -> y      outputs [y]
    exposed:  x -> A -> t -> B -> y      outputs [y, t]   (keep_outputs)   or   [t]

Each extra output is a name-only ``ValueInfoProto``: onnxruntime takes its type and shape from
the node that computes it. A tensor that is already an output is not added twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

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
    if not keep_outputs:
        del exposed.graph.output[:]
    present = {o.name for o in exposed.graph.output}
    exposed.graph.output.extend(
        onnx.ValueInfoProto(name=n) for n in dict.fromkeys(names) if n not in present
    )
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

    Args:
        model: the model; not modified.
        names: tensors computed by nodes of ``model`` (or graph inputs/initializers).
        feeds: graph input name -> array.
        keep_outputs: also return the model's own outputs (first, in graph order).
        session_of: builds the session and so names its settings; default
            :func:`numerics.session` (CPU, optimizations off: ORT_DISABLE_ALL);
            :func:`numerics.default_session` runs it as ``ort.InferenceSession(path)`` does.

    Returns:
        Every output of the exposed model by name, in its graph output order.
    """
    exposed = expose(model, names, keep_outputs)
    outputs = [o.name for o in exposed.graph.output]
    return dict(zip(outputs, session_of(exposed).run(outputs, dict(feeds))))
