"""Compare two quantized ONNX models on their integer grids (fake-quant, QDQ, deploy).

Every model ``save_model`` writes names each quantized activation alike, ``<layer>.quant.out``:
a QuantizeLinear output (QDQ, deploy) or, in the fake-quant model, the output of the ``Clip``
that bounds ``round(x / s) + o`` (integers held in float32). Running two models in onnxruntime
with those tensors exposed as extra outputs (:mod:`.exposed_run`) gives, per tensor, how the
integers differ. Float summation order flips a rounding now and then; on an int8 grid a flip is
one step.

Each tensor is read on its own grid: ``bits`` is its QuantizeLinear zero point's type, or the
fake-quant Clip's lower bound (int8, or int16 for a layer calibrated with ``act_type`` INT16).
Differences are counted in int8-equivalent steps, ``round(d / 2^(bits - 8))`` (half up) for
``d`` of the tensor's own integers: a 16-bit step is 256 times finer over the same range, so a
one-step int16 difference (float round-off) counts as none and a difference counts as a flip
from half an int8 step on. ``max_steps`` stays in the tensor's own integers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from qdqforge.graph.exposed_run import run_exposed
from qdqforge.graph.held_arrays import array_of

T = onnx.TensorProto
GRID_BITS = {T.INT8: 8, T.UINT8: 8, T.INT16: 16, T.UINT16: 16}
QUANT_OUT = ".quant.out"
CLIP_BITS = {-128.0: 8, -32768.0: 16}


@dataclass(frozen=True)
class GridMismatch:
    """How one quantized activation differs between two models.

    Attributes:
        tensor: the QuantizeLinear output name.
        max_steps: largest |q_a - q_b| in the tensor's own integers.
        differ: integers that differ by at least one int8-equivalent step (module docstring).
        total: integers compared.
        beyond_one: integers that differ by more than one int8-equivalent step.
        bits: the tensor's grid (8 or 16).
        ties: of ``differ``, flips where both models computed the same value on a rounding
            half-point (``front.save.verify_ties``); 0 where not examined.
    """

    tensor: str
    max_steps: int
    differ: int
    total: int
    beyond_one: int = 0
    bits: int = 8
    ties: int = 0


def compare_grid(name: str, qa: np.ndarray, qb: np.ndarray, bits: int = 8) -> GridMismatch:
    """:class:`GridMismatch` of two same-shaped integer tensors on a ``bits`` grid.

    Integers of 8 or 16 bits on both sides differ in int32 (exact), others (int32 grids of the
    torch side, the fake-quant model's float integers, NaN included) in int64 as always; on an
    8-bit grid a step is a difference of one. The save check calls this for every quantized
    activation of every comparison (600 times for EfficientNet-Lite0)."""
    qa, qb = np.asarray(qa), np.asarray(qb)
    if _narrow(qa) and _narrow(qb):
        delta = np.abs(np.subtract(qa, qb, dtype=np.int32))
    else:
        delta = np.abs(np.asarray(qa, np.int64) - np.asarray(qb, np.int64))
    unit = 2 ** (bits - 8)
    steps = delta if unit == 1 else (delta + unit // 2) // unit
    return GridMismatch(
        name,
        int(delta.max(initial=0)),
        int(np.count_nonzero(steps)),
        delta.size,
        int(np.count_nonzero(steps > 1)),
        bits,
    )


def _narrow(array: np.ndarray) -> bool:
    return array.dtype.kind in "iu" and array.dtype.itemsize <= 2


def quantized_activations(model: onnx.ModelProto) -> list[str]:
    """Integer activation tensors, in graph order: outputs of QuantizeLinear nodes whose input
    is not a constant, and fake-quant ``Clip`` outputs named ``<layer>.quant.out``."""
    constants = {i.name for i in model.graph.initializer}
    return [
        n.output[0]
        for n in model.graph.node
        if (n.op_type == "QuantizeLinear" and n.input[0] not in constants)
        or (n.op_type == "Clip" and n.output[0].endswith(QUANT_OUT))
    ]


def activation_types(model: onnx.ModelProto) -> dict[str, int]:
    """``{integer tensor: TensorProto type}``: a QuantizeLinear zero point's (uint8 without
    one); float for a fake-quant Clip's output."""
    zero_points = {i.name: i.data_type for i in model.graph.initializer}
    types = {}
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear":
            types[n.output[0]] = (
                zero_points.get(n.input[2], T.UINT8) if len(n.input) > 2 else T.UINT8
            )
        elif n.op_type == "Clip" and n.output[0].endswith(QUANT_OUT):
            types[n.output[0]] = T.FLOAT
    return types


def activation_bits(model: onnx.ModelProto) -> dict[str, int]:
    """``{integer tensor: grid bits}`` (8 or 16)."""
    bits = {name: GRID_BITS.get(kind, 8) for name, kind in activation_types(model).items()}
    lows = {i.name: i for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Clip" and n.output[0].endswith(QUANT_OUT) and n.input[1] in lows:
            low = float(array_of(lows[n.input[1]]))
            bits[n.output[0]] = CLIP_BITS.get(low, 8)
    return bits


def run_with_tensors(
    model: onnx.ModelProto, names: list[str], feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Values of the intermediate integer tensors ``names`` on ``feeds`` (optimizations off)."""
    return run_exposed(model, names, feeds, keep_outputs=False)


def grid_mismatch(
    a: onnx.ModelProto, b: onnx.ModelProto, feeds: Mapping[str, np.ndarray]
) -> list[GridMismatch]:
    """Per shared quantized activation (in ``a``'s order), how ``b``'s integers differ."""
    shared = [n for n in quantized_activations(a) if n in set(quantized_activations(b))]
    got_a, got_b = run_with_tensors(a, shared, feeds), run_with_tensors(b, shared, feeds)
    bits = activation_bits(a)
    return [compare_grid(name, got_a[name], got_b[name], bits[name]) for name in shared]
