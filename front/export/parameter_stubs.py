"""The dynamo exporter's graph without the module's parameters, found by identity, not by bytes.

torch's dynamo exporter builds an onnx_ir model whose initializers wrap the exported module's own
tensors (``TorchTensor.raw`` is the ``nn.Parameter`` object itself); ``program.model_proto``
copies every one into the proto, each through a bytes object of its own on the way. On the
2.3 GB model of ``bench/large_flow.py`` that proto held 1x the weights beside the user's model,
the export peaked 0.4x higher than that, and the cache then compared every initializer's bytes
with the model's through one more copy of each (protobuf gives no view of ``raw_data``).

:func:`serialize_without_parameters` serializes the onnx_ir model with each initializer
that *is* a parameter of the exported module (the same object, under one of its names) as a
data-less stub: ``data_location: EXTERNAL`` at :data:`PARAMETER`. ``cache_weights.weightless``
takes a stub as the model's tensor of that name without comparing bytes (the export copy shares
the user's parameters: ``attempts.export_copy``), and ``cache_weights.held_weights`` gives the
flow's graph read-only views of those tensors. Buffers are the export copy's own copies, never
stubs here: they keep the byte comparison. A stub reaching onnx or onnxruntime before that
fails loudly (an external file that does not exist), never silently.
"""

from __future__ import annotations

import onnx
import onnx_ir as ir
import torch
from torch import nn

PARAMETER = "qdqforge-parameter"  # the external "location" of a stub
_PLAIN = {
    torch.float32,
    torch.float64,
    torch.float16,
    torch.int8,
    torch.uint8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
}  # fmt: skip  (numpy types: held as views)


def serialize_without_parameters(model: ir.Model, module: nn.Module) -> onnx.ModelProto:
    """``ir.serde.serialize_model(model)`` with every initializer that wraps a parameter of
    ``module`` (of a numpy type) under one of its names as a stub (module docstring); ``model``
    is left as it was."""
    names_of: dict[int, set[str]] = {}
    for name, parameter in module.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(parameter), set()).add(name)
    swapped = {}
    for name, value in model.graph.initializers.items():
        tensor = value.const_value
        raw = getattr(tensor, "raw", None)
        if isinstance(raw, nn.Parameter) and name in names_of.get(id(raw), ()) and _plain(raw):
            swapped[name] = tensor
            value.const_value = ir.ExternalTensor(
                PARAMETER, None, None, tensor.dtype, shape=tensor.shape, name=name
            )
    try:
        return ir.serde.serialize_model(model)
    finally:
        for name, tensor in swapped.items():
            model.graph.initializers[name].const_value = tensor


def _plain(parameter: torch.Tensor) -> bool:
    """A numpy type: its bytes are the ones ``cache_weights`` reads (``tensor_bytes``)."""
    return parameter.dtype in _PLAIN


def is_parameter_stub(tensor: onnx.TensorProto) -> bool:
    """True for an initializer :func:`serialize_without_parameters` left without its data."""
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return False
    return any(e.key == "location" and e.value == PARAMETER for e in tensor.external_data)
