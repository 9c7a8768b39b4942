"""Read the integer activations of the three models the save-time check compares.

onnxruntime: the integer outputs of the activation QuantizeLinear nodes (``<layer>.quant.out``,
int8 or int16), exposed as extra graph outputs next to the real ones, in one session per model.

torch: integers are taken where the module quantizes, so torch-vs-ORT compares integers, not
only outputs. Two taps, used together:

* fx: in a module from ``qdqforge.reimport`` of the fake-quant ONNX, each activation
  ``DQ(Q(x))`` is one ``fake_quantize(x, scale, zp, qmin, qmax, axis)`` call whose ``scale`` is
  the Q node's scale initializer (``onnx_mapping``); the tap computes
  ``q = clamp(round(x / scale) + zp, qmin, qmax)`` from the call's own arguments.
* protocol: any submodule with a ``layer`` name and a ``quant_grid() -> (scale, offset)`` method
  is hooked; its output ``y`` (the first item of a tuple) is on that grid, so
  ``q = round(y / scale) + offset`` is exact. The QAT activation ops use this.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
import torch
import torch.fx
from torch import nn

from qdqforge.graph import numerics
from qdqforge.graph.quant_compare import expose
from qdqforge.runtime.kernels.fake_quant_ref import fake_quantize, quantize_linear

_FAKE_QUANT_ARGS = inspect.signature(fake_quantize)


def ort_run(
    model: onnx.ModelProto, names: Sequence[str], feeds: Mapping[str, np.ndarray]
) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """``(outputs, {tensor: integers})`` of ``model`` on ``feeds`` in one session."""
    exposed = expose(model, names, keep_outputs=True)
    values = dict(zip((o.name for o in exposed.graph.output), numerics.run(exposed, feeds)))
    outputs = [o.name for o in model.graph.output]
    return [values[n] for n in outputs], {n: values[n] for n in names}


def torch_run(
    module: nn.Module, fake_quant: onnx.ModelProto, inputs: Sequence[np.ndarray]
) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """``(outputs, {tensor: integers})`` of ``module`` in eval mode (mode restored after)."""
    grids: dict[str, np.ndarray] = {}
    hooks = [m.register_forward_hook(_protocol_hook(grids)) for m in _grid_modules(module)]
    targets = fx_targets(module, fake_quant)
    args = [torch.from_numpy(np.array(a, copy=True)) for a in inputs]
    was_training = module.training
    try:
        with torch.no_grad():
            module.eval()
            runner = _GridInterpreter(module, targets, grids).run if targets else module
            result = runner(*args)
    finally:
        module.train(was_training)
        for hook in hooks:
            hook.remove()
    leaves = torch.utils._pytree.tree_leaves(result)
    return [t.detach().cpu().numpy() for t in leaves if isinstance(t, torch.Tensor)], grids


def fx_targets(module: nn.Module, fake_quant: onnx.ModelProto) -> dict[str, str]:
    """fx node name -> ``<layer>.quant.out`` for the activation quantizers of a reimport."""
    if not isinstance(module, torch.fx.GraphModule):
        return {}
    constants = {i.name for i in fake_quant.graph.initializer}
    by_scale = {
        n.input[1]: n.output[0]
        for n in fake_quant.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] not in constants
    }
    by_attr = {path: name for name, path in getattr(module, "onnx_mapping", {}).items()}
    targets = {}
    for node in module.graph.nodes:
        if node.op == "call_function" and node.target in (fake_quantize, quantize_linear):
            scale = node.args[1] if len(node.args) > 1 else node.kwargs.get("scale")
            if isinstance(scale, torch.fx.Node) and scale.op == "get_attr":
                tensor = by_scale.get(by_attr.get(scale.target, ""))
                if tensor is not None:
                    targets[node.name] = tensor
    return targets


class _GridInterpreter(torch.fx.Interpreter):
    """Runs the GraphModule and stores the integers of the target quantizer calls."""

    def __init__(self, module, targets: dict[str, str], grids: dict[str, np.ndarray]) -> None:
        super().__init__(module)
        self.targets, self.grids = targets, grids

    def run_node(self, n: torch.fx.Node):
        if n.name in self.targets:
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            self.grids[self.targets[n.name]] = _integers(n.target, args, kwargs)
        return super().run_node(n)


def _integers(fn, args, kwargs) -> np.ndarray:
    if fn is quantize_linear:
        return fn(*args, **kwargs).to(torch.int32).numpy()
    bound = _FAKE_QUANT_ARGS.bind(*args, **kwargs)
    bound.apply_defaults()
    x, scale, zp, qmin, qmax, axis = bound.arguments.values()
    return quantize_linear(x, scale, zp, qmin, qmax, axis, torch.int32).numpy()


def _grid_modules(module: nn.Module) -> list[nn.Module]:
    return [
        m
        for m in module.modules()
        if isinstance(getattr(m, "layer", None), str) and callable(getattr(m, "quant_grid", None))
    ]


def _protocol_hook(grids: dict[str, np.ndarray]):
    def hook(op: nn.Module, args, output) -> None:
        y = output[0] if isinstance(output, (tuple, list)) else output
        scale, offset = op.quant_grid()
        q = torch.round(y.detach().double() / float(scale)) + int(offset)
        grids[f"{op.layer}.quant.out"] = q.to(torch.int32).cpu().numpy()

    return hook
