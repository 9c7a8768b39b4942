"""Hand-built ONNX graphs named like a torch model's state_dict (what qdqforge.export writes)."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from tests.helpers.ortcheck import with_roles


class TinyNet(nn.Module):
    """conv -> bn -> relu -> dropout -> flatten -> fc: the torch twin of :func:`tiny_net_onnx`."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 5 * 5, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.drop(self.features(x)), 1))


def tiny_net_onnx(model: TinyNet, opset: int = 17) -> onnx.ModelProto:
    """The ONNX graph of :class:`TinyNet`, initializers named by torch state_dict keys."""
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    inits = [numpy_helper.from_array(v, k) for k, v in state.items() if "num_batches" not in k]
    inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "ratio"))
    bn = ["features.1." + s for s in ("weight", "bias", "running_mean", "running_var")]
    nodes = [
        helper.make_node(
            "Conv",
            ["x", "features.0.weight", "features.0.bias"],
            ["c"],
            name="/features/0/Conv",
            pads=[1, 1, 1, 1],
        ),
        helper.make_node(
            "BatchNormalization",
            ["c", *bn],
            ["b"],
            name="/features/1/BN",
            momentum=0.9,
            epsilon=1e-5,
        ),
        helper.make_node("Relu", ["b"], ["r"], name="/features/2/Relu"),
        helper.make_node("Dropout", ["r", "ratio"], ["d"], name="/drop/Dropout"),
        helper.make_node("Flatten", ["d"], ["f"], name="/Flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], name="/fc/Gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 9
    params = [n for n, _ in model.named_parameters()]
    buffers = [n for n, _ in model.named_buffers() if "num_batches" not in n]
    return with_roles(proto, params, buffers)


def tied_onnx() -> onnx.ModelProto:
    """``y = MatMul(MatMul(x, W), W)``: one initializer read by two nodes (weight tying)."""
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32) * 0.5 + 0.1, "shared.weight")
    nodes = [
        helper.make_node("MatMul", ["x", "shared.weight"], ["h"], name="mm1"),
        helper.make_node("MatMul", ["h", "shared.weight"], ["y"], name="mm2"),
    ]
    graph = helper.make_graph(
        nodes,
        "tied",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [w],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 9
    return proto
