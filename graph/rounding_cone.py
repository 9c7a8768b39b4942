"""Which outputs of a model a rounding reaches without passing a given set of tensors.

A forced run (:mod:`.forced_run`) feeds another run's integers in at some tensors; an output is
then one layer's float round-off away from the reference only if no rounding lies between it
and those tensors. Where a rounding node upstream of an output was not cut (onnxruntime renamed
or fused the tensor that would have been forced), a float difference before it can flip an
integer, and the flip travels on to the output: the output differs as a free run does::

    forced t -> Gemm -> output                   judged: only the Gemm's round-off
    x -> QuantizeLinear -> QLinearConv -> ...    not cut: free-running flips reach the output

Rounding nodes: Round, QuantizeLinear, DynamicQuantizeLinear, onnxruntime's QLinear* kernels,
and QGemm with an output scale (integer output).
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx

ROUNDING_OPS = frozenset({"Round", "QuantizeLinear", "DynamicQuantizeLinear"})
QGEMM_OUTPUT_SCALE = 7  # QGemm's y_scale input: present -> integer output


def rounds(node: onnx.NodeProto) -> bool:
    """``node`` rounds to an integer grid (module docstring)."""
    if node.op_type in ROUNDING_OPS or node.op_type.startswith("QLinear"):
        return True
    return (
        node.op_type == "QGemm"
        and len(node.input) > QGEMM_OUTPUT_SCALE
        and bool(node.input[QGEMM_OUTPUT_SCALE])
    )


def reached_by_rounding(
    model: onnx.ModelProto, outputs: Iterable[str], cut: Iterable[str]
) -> set[str]:
    """The ``outputs`` with a rounding node upstream that the tensors ``cut`` do not separate
    from them (walking producers back from each output, stopping at ``cut``)."""
    producer = {out: node for node in model.graph.node for out in node.output}
    stop, reached = set(cut), set()
    for output in outputs:
        stack, seen = [output], set()
        while stack:
            tensor = stack.pop()
            if tensor in seen or tensor in stop or tensor not in producer:
                continue
            seen.add(tensor)
            node = producer[tensor]
            if rounds(node):
                reached.add(output)
                break
            stack.extend(name for name in node.input if name)
    return reached
