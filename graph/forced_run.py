"""Run a quantized model with its integer activations forced to another run's values.

Two runs of a quantized model that differ only by float summation order disagree on a rounding
now and then, and every flip moves the next layers' inputs: in deep or attention-heavy models
the flips multiply with depth (MiniLM-L6: 1 flip in the fourth block's inputs became 25% of a
later tensor's integers, up to 15 steps). Free-running comparisons cannot tell that from a
fault. Forcing separates them: every quantized tensor ``t`` of model B is cut out of B's graph,

    producer -> t -> consumers        becomes        producer -> t.computed   (an extra output)
                                                      input t  -> consumers   (a graph input)

and B runs with A's integers fed as ``t``. Each ``t.computed`` is then what B computes for that
tensor from A's integers upstream: a comparison per layer, in which float round-off flips a
rounding with the probability of a single layer's error, and a wrong scale, offset, weight or
kernel shows at its own layer whatever its depth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from qdqforge.graph import numerics
from qdqforge.graph.exposed_run import expose

COMPUTED = ".computed"


def forced_model(
    model: onnx.ModelProto, names: Sequence[str], dtypes: Mapping[str, np.dtype]
) -> onnx.ModelProto:
    """A copy of ``model`` whose tensors ``names`` are graph inputs (module docstring).

    Args:
        model: the model; not modified.
        names: tensors computed by nodes of ``model``.
        dtypes: each tensor's numpy dtype in ``model`` (the graph input's type).
    """
    forced = onnx.ModelProto()
    forced.CopyFrom(model)
    wanted = set(names)
    for node in forced.graph.node:
        for i, out in enumerate(node.output):
            if out in wanted:
                node.output[i] = out + COMPUTED
    forced.graph.input.extend(
        onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(dtypes[n]), None)
        for n in names
    )
    return expose(forced, [n + COMPUTED for n in names])


def forced_run(
    model: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    forced_values: Mapping[str, np.ndarray],
    dtypes: Mapping[str, np.dtype],
    session_of=numerics.session,
) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """``(outputs, {tensor: computed value})`` of ``model`` with ``forced_values`` fed in.

    Tensors of ``forced_values`` that no node of ``model`` computes, or whose dtype in
    ``model`` is not in ``dtypes``, are left alone. Optimizations are off: ``model`` runs as it
    is written (pass onnxruntime's optimized graph to check what a default session runs).
    ``session_of`` builds the session (default :func:`numerics.session`).
    """
    produced = {out for node in model.graph.node for out in node.output}
    names = [n for n in forced_values if n in produced and n in dtypes]
    session = session_of(forced_model(model, names, dtypes))
    inputs = dict(feeds)
    inputs.update({n: np.asarray(forced_values[n]).astype(dtypes[n]) for n in names})
    values = session.run(None, inputs)
    count = len(model.graph.output)
    return values[:count], dict(zip(names, values[count:]))
