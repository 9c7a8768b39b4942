"""Checks of saved models as a user runs them: ``ort.InferenceSession(path)``, no options.

Shared by the runtime-honesty tests. Integers are compared per layer, forced
(``graph.forced_run``): onnxruntime's optimized graph runs with the torch module's integers fed
in at every quantized activation, so a difference is one layer's float round-off (budget: one
step, on at most 1e-3 of a tensor's integers or one of them) and not the flips of all the layers
before it.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from qdqforge.front.save.verify_taps import torch_run
from qdqforge.graph import numerics
from qdqforge.graph.forced_run import forced_run
from qdqforge.graph.kernel_audit import fused_integer_nodes
from qdqforge.graph.quant_compare import activation_bits, compare_grid, quantized_activations

FLIP_FRACTION = 1e-3


def assert_default_session_reproduces(module, fake_quant_path, x: np.ndarray) -> float:
    """The fake-quant model in a plain session vs ``module``; returns the output error
    relative to the output range (free-running, what the user sees)."""
    fake = onnx.load(str(fake_quant_path))
    names, bits = quantized_activations(fake), activation_bits(fake)
    torch_out, torch_q = torch_run(module, [x])
    assert set(torch_q) == set(names), "every quantized activation of the module is compared"
    feeds = numerics.feeds_for(fake, [x])
    optimized = numerics.optimized_graph(fake)
    assert fused_integer_nodes(optimized) == []  # nothing runs as an integer kernel
    dtypes = {n: np.dtype(np.float32) for n in names}
    forced_out, computed = forced_run(optimized, feeds, torch_q, dtypes)
    assert len(computed) >= len(names) // 2  # most keep their name (q/k/v may be merged)
    for name, got in computed.items():
        grid = compare_grid(name, torch_q[name], got, bits[name])
        assert grid.max_steps <= 1, grid
        assert grid.differ <= max(FLIP_FRACTION * grid.total, 1), grid
    for a, b in zip(torch_out, forced_out):
        assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max()
    plain = ort.InferenceSession(str(fake_quant_path)).run(None, feeds)
    return max(float(np.abs(a - b).max() / np.abs(a).max()) for a, b in zip(torch_out, plain))


def layer_integers(model: onnx.ModelProto, layer: str) -> dict[str, np.ndarray]:
    """A layer's stored int8 weight (as ``[Cout, ...]``) and int32 bias in a QDQ/deploy model."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    out = {}
    dq = nodes.get(f"{layer}.weight_dequant")
    weight = inits.get(f"{layer}.weight_int8", inits.get(dq.input[0]) if dq else None)
    if weight is not None:
        out["weight"] = weight
    if f"{layer}.bias_int32" in inits:
        out["bias"] = inits[f"{layer}.bias_int32"].reshape(-1)
    return out
