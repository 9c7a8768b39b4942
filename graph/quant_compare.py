"""Compare two quantized ONNX models on their integer grids (fake-quant vs deploy).

Both models name each activation's QuantizeLinear output alike (``<layer>.quant.out``), so
running both in onnxruntime with those int8 tensors exposed as extra outputs gives, per tensor,
the largest difference in quantization steps and how many integers differ. Float summation order
legitimately flips a rounding now and then in deep nets; a flip is one step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from qdqforge.graph import numerics


@dataclass(frozen=True)
class GridMismatch:
    """How one int8 tensor differs between two models.

    Attributes:
        tensor: the QuantizeLinear output name.
        max_steps: largest |q_a - q_b|.
        differ: integers that differ.
        total: integers compared.
        beyond_one: integers that differ by more than one step.
    """

    tensor: str
    max_steps: int
    differ: int
    total: int
    beyond_one: int = 0


def quantized_activations(model: onnx.ModelProto) -> list[str]:
    """Outputs of QuantizeLinear nodes whose input is not a constant, in graph order."""
    constants = {i.name for i in model.graph.initializer}
    return [
        n.output[0]
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] not in constants
    ]


def run_with_tensors(
    model: onnx.ModelProto, names: list[str], feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Values of the intermediate tensors ``names`` (int8) on ``feeds``."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    del exposed.graph.output[:]
    exposed.graph.output.extend(
        onnx.helper.make_tensor_value_info(n, onnx.TensorProto.INT8, None) for n in names
    )
    return dict(zip(names, numerics.run(exposed, feeds)))


def grid_mismatch(
    a: onnx.ModelProto, b: onnx.ModelProto, feeds: Mapping[str, np.ndarray]
) -> list[GridMismatch]:
    """Per shared quantized activation (in ``a``'s order), how ``b``'s integers differ."""
    shared = [n for n in quantized_activations(a) if n in set(quantized_activations(b))]
    got_a, got_b = run_with_tensors(a, shared, feeds), run_with_tensors(b, shared, feeds)
    result = []
    for name in shared:
        delta = np.abs(got_a[name].astype(np.int32) - got_b[name].astype(np.int32))
        result.append(
            GridMismatch(
                name,
                int(delta.max(initial=0)),
                int((delta > 0).sum()),
                delta.size,
                int((delta > 1).sum()),
            )
        )
    return result
