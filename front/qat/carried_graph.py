"""The QAT ONNX graph a QAT module carries, so saving needs nothing but the module.

``create_quant_retrain_model`` attaches a :class:`QatGraph` child (``<module>.qat_graph``): the
QAT graph without the data of initializers the module holds as parameters or persistent
buffers (they would double the memory). :func:`trained_graph` fills them back in from the
module's current state, giving the graph as trained. The child has no tensors, so it is absent
from ``state_dict`` and survives ``copy.deepcopy`` and pickling like any submodule.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from qdqforge.errors import ConfigError
from qdqforge.graph import io
from qdqforge.graph.detached import is_placeholder, placeholder
from qdqforge.graph.ir import Graph

GRAPH_MODULE = "qat_graph"
WRAPPERS = (nn.parallel.DistributedDataParallel, nn.DataParallel)


class QatGraph(nn.Module):
    """Holds the serialized QAT graph skeleton (``onnx_bytes``) of its parent module."""

    def __init__(self, onnx_bytes: bytes) -> None:
        super().__init__()
        self.onnx_bytes = onnx_bytes

    def extra_repr(self) -> str:
        return f"{len(self.onnx_bytes)} bytes"


def attach_graph(
    module: nn.Module, proto: onnx.ModelProto, tensors: dict[str, np.ndarray] | None = None
) -> None:
    """Store ``proto`` on ``module`` without the data of tensors ``module`` holds.

    ``tensors``: the arrays of ``proto``'s placeholders (:mod:`qdqforge.graph.detached`); one
    the module does not hold (a constant) is written back into the stored graph.
    """
    skeleton = onnx.ModelProto()
    skeleton.CopyFrom(proto)
    held = _held_tensors(module)
    for index, init in enumerate(skeleton.graph.initializer):
        if init.name in held:
            init.ClearField("raw_data")
            for field in ("float_data", "double_data", "int32_data", "int64_data"):
                init.ClearField(field)
            init.ClearField("data_location")  # a placeholder's marks: as if it held data
            init.ClearField("external_data")
        elif is_placeholder(init):
            value = numpy_helper.from_array((tensors or {})[init.name], init.name)
            skeleton.graph.initializer[index].CopyFrom(value)
    module.add_module(GRAPH_MODULE, QatGraph(skeleton.SerializeToString()))


def qat_module(model: nn.Module) -> nn.Module:
    """``model`` without DDP/DataParallel wrappers; it must carry a QAT graph.

    Raises:
        ConfigError: ``model`` was not built by create/restore_quant_retrain_model.
    """
    while isinstance(model, WRAPPERS):
        model = model.module
    if not isinstance(getattr(model, GRAPH_MODULE, None), QatGraph):
        raise ConfigError(
            f"model ({type(model).__name__}) is not a QAT model: pass the module returned by "
            "create_quant_retrain_model or restore_quant_retrain_model"
        )
    return model


def trained_graph(module: nn.Module) -> Graph:
    """The QAT graph with every held initializer set to ``module``'s current value.

    The graph's arrays are the module's tensors (``Tensor.numpy()``, no copy; the passes after
    it replace arrays, never write into them): a > 2 GB model's weights are not copied into a
    proto and then into the graph.
    """
    proto = onnx.load_from_string(getattr(module, GRAPH_MODULE).onnx_bytes)
    held = _held_tensors(module)
    arrays = {}
    for index, init in enumerate(proto.graph.initializer):
        if init.name in held:
            arrays[init.name] = held[init.name].detach().cpu().numpy()
            proto.graph.initializer[index].CopyFrom(placeholder(init.name, arrays[init.name]))
    graph = io.from_proto(proto)
    for name, tensor in graph.gs.tensors().items():
        if name in arrays:
            tensor.values, tensor.data_location = arrays[name], None  # as from_array leaves it
    return graph


def tensor_at(module: nn.Module, path: str) -> torch.Tensor:
    """The tensor at attribute ``path`` (``"layer1.0.conv1.weight"``)."""
    return functools.reduce(getattr, path.split("."), module)


def _held_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """ONNX initializer name -> the module's parameter or persistent buffer holding it."""
    state = module.state_dict(keep_vars=True)
    mapping = getattr(module, "onnx_mapping", {})
    return {name: state[path] for name, path in mapping.items() if path in state}
