"""Read the integer activations of the models the save-time check compares.

onnxruntime: each model names its quantized activations ``<layer>.quant.out``
(``graph.quant_compare``); they are exposed as extra graph outputs next to the real ones
(``graph.exposed_run``). A forced run (``graph.forced_run``) feeds another run's integers in at
those tensors and returns what the model computes for each of them.

torch: any submodule with a ``layer`` name and a ``quant_grid() -> (scale, offset) | None``
method is hooked (the QAT activation ops; the PTQ calibration module's observers once
calibrated; ``ActQuantOp`` of the PTQ reference); its output ``y`` (the first item of a tuple) is
on that grid, so ``q = round(y / scale) + offset`` is exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
import torch
from onnx import helper
from torch import nn

from qdqforge.front.entry.input_guard import module_device
from qdqforge.graph import numerics
from qdqforge.graph.exposed_run import run_exposed
from qdqforge.graph.forced_run import forced_run
from qdqforge.graph.mapped import release_all
from qdqforge.graph.quant_compare import activation_types

Run = tuple[list[np.ndarray], dict[str, np.ndarray]]


def reference_session(model: onnx.ModelProto):
    """The reference stage's session: optimizations off, weights not prepacked (prepacking
    copies every weight: about half of a session's set-up on weight-heavy models; the runtime
    stage runs onnxruntime's optimized graph with the kernels a default session uses), and
    fed as inputs, read in place (``numerics.session``'s ``fed``: no copy of them at all)."""
    return numerics.session(model, prepack=False, fed=True)


def ort_run(
    model: onnx.ModelProto, names: Sequence[str], feeds: Mapping[str, np.ndarray], session_of=None
) -> Run:
    """``(outputs, {tensor: integers})`` of ``model`` on ``feeds`` in one session.

    ``session_of`` builds the session (default :func:`reference_session`).
    """
    return ort_run_reading(model, names, (), feeds, session_of)[0]


def ort_run_reading(
    model: onnx.ModelProto,
    names: Sequence[str],
    also: Sequence[str],
    feeds: Mapping[str, np.ndarray],
    session_of=None,
) -> tuple[Run, dict[str, np.ndarray]]:
    """:func:`ort_run`, and ``{name: value}`` of the computed tensors ``also``, read in the
    same run."""
    computed = produced(model)
    present = [n for n in names if n in computed]
    session_of = session_of or reference_session
    values = run_exposed(model, [*present, *also], feeds, session_of=session_of)
    outputs = [o.name for o in model.graph.output]
    run = [values[n] for n in outputs], {n: values[n] for n in present}
    return run, {n: values[n] for n in also}


def ort_forced(
    model: onnx.ModelProto,
    written: onnx.ModelProto,
    feeds,
    integers: Mapping[str, np.ndarray],
    floats: Mapping[str, np.ndarray] | None = None,
    session_of=None,
) -> Run:
    """``model`` run with ``integers`` (dtypes from the ``written`` model) and float32
    ``floats`` (e.g. biases) forced in; ``session_of`` as :func:`ort_run`'s."""
    types = activation_types(written)
    dtypes = {n: helper.tensor_dtype_to_np_dtype(t) for n, t in types.items() if n in integers}
    dtypes.update({n: np.dtype(np.float32) for n in floats or {}})
    forced = {**integers, **(floats or {})}
    return forced_run(model, feeds, forced, dtypes, session_of or reference_session)


def produced(model: onnx.ModelProto) -> set[str]:
    """Every tensor a node of ``model`` computes."""
    return {out for node in model.graph.node for out in node.output}


def torch_run(module: nn.Module, inputs: Sequence[np.ndarray]) -> Run:
    """``(outputs, {tensor: integers})`` of ``module`` in eval mode (mode restored after)."""
    grids: dict[str, np.ndarray] = {}
    hooks = [m.register_forward_hook(_protocol_hook(grids)) for m in _grid_modules(module)]
    device = module_device(module) or torch.device("cpu")  # a GPU-trained QAT model runs there
    args = [torch.from_numpy(np.array(a, copy=True)).to(device) for a in inputs]
    was_training = module.training
    try:
        with torch.no_grad():
            result = module.eval()(*args)
    finally:
        module.train(was_training)
        for hook in hooks:
            hook.remove()
        release_all()  # a module over mapped weights (> 2 GB) holds no pages between runs
    leaves = torch.utils._pytree.tree_leaves(result)
    return [t.detach().cpu().numpy() for t in leaves if isinstance(t, torch.Tensor)], grids


def _grid_modules(module: nn.Module) -> list[nn.Module]:
    return [
        m
        for m in module.modules()
        if isinstance(getattr(m, "layer", None), str) and callable(getattr(m, "quant_grid", None))
    ]


def _protocol_hook(grids: dict[str, np.ndarray]):
    def hook(op: nn.Module, args, output) -> None:
        grid = op.quant_grid()
        if grid is None:  # not quantizing (yet): e.g. an observer still calibrating
            return
        y = output[0] if isinstance(output, (tuple, list)) else output
        scale, offset = grid
        q = torch.round(y.detach().double() / float(scale)) + int(offset)
        grids[f"{op.layer}.quant.out"] = q.to(torch.int32).cpu().numpy()

    return hook
