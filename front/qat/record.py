"""Record entries from a QAT module's learned state (docs/amct.md §4.5-4.6).

Per layer with a ULQ activation op::

    scale_d, offset_d = s, o of the learned clips (after AMCT's fallbacks):
                        s = (clip_max - clip_min) / (2^b - 1), o = round(-2^(b-1) - clip_min / s)
    scale_w           = ARQ scale of the current weight (arq_retrain) or the learned positive
                        scale (ulq_retrain); offset_w = 0
    shift_bit         = search-N argmin per output channel, from eval forwards

A MatMul between two activations has no weight; its input 1's ULQ op (``<layer>.input_1``)
gives ``scale_h``/``offset_h`` of the same entry (:mod:`qdqforge.graph.activation_matmul`).

AMCT copies these in the first eval forward after training and fails at save when none ran
("record_file is empty"); here they are read from the module, and :func:`ensure_statistics`
runs ``input_data`` in eval mode when the clips or the search-N statistics are missing.
"""

from __future__ import annotations

import torch
from torch import nn

from qdqforge.errors import CalibrationError
from qdqforge.front.qat.carried_graph import tensor_at
from qdqforge.front.record.file import LayerRecord
from qdqforge.graph.activation_matmul import layer_of_input
from qdqforge.passes.grids.weight_grid import weight_type_field
from qdqforge.runtime import distributed
from qdqforge.runtime.kernels.ulq import ulq_scale_offset
from qdqforge.runtime.modules.qat_act import UlqActQuantOp
from qdqforge.runtime.modules.qat_search_n import SearchNOp
from qdqforge.runtime.modules.qat_weight import ArqRetrainWeightOp, UlqRetrainWeightOp

WEIGHT_OPS = (ArqRetrainWeightOp, UlqRetrainWeightOp)


def ops_by_layer(module: nn.Module, kinds) -> dict[str, nn.Module]:
    """``{layer: op}`` for the QAT ops of the given types, in module order."""
    return {op.layer: op for op in module.modules() if isinstance(op, kinds)}


def ensure_statistics(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """Run ``inputs`` in eval mode (no grad, no collectives) until every clip is initialized and
    every search-N op has statistics; returns the number of forwards run (0 when none needed)."""
    acts = ops_by_layer(module, UlqActQuantOp).values()
    searches = ops_by_layer(module, SearchNOp).values()
    limit = max([op.batch_num for op in acts], default=1)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    was_training, runs = module.training, 0
    module.eval()
    try:
        with torch.no_grad(), distributed.local_only():
            while runs < limit and not _complete(acts, searches):
                module(*(x.to(device) for x in inputs))
                runs += 1
    finally:
        module.train(was_training)
    return runs


def _complete(acts, searches) -> bool:
    return all(op.ready for op in acts) and all(op.has_statistics for op in searches)


def learned_records(module: nn.Module) -> dict[str, LayerRecord]:
    """``{layer: LayerRecord}`` from the module's current state (module docstring).

    Raises:
        CalibrationError: a layer's clips are not initialized or its search-N saw no batch.
    """
    weights = ops_by_layer(module, WEIGHT_OPS)
    searches = ops_by_layer(module, SearchNOp)
    fields_of: dict[str, dict] = {}
    for name, act in ops_by_layer(module, UlqActQuantOp).items():
        layer = layer_of_input(name)
        fields = fields_of.setdefault(layer, {})
        fields.update(_activation_fields(name, act, second=layer != name))
        if layer in weights:
            scale_w = _weight_scale(module, weights[layer]).tolist()
            fields.update(scale_w=tuple(scale_w), offset_w=(0,) * len(scale_w))
            fields["dst_type"] = weight_type_field(weights[layer].num_bits)  # the savers' grid
        if layer in searches:
            fields["shift_bit"] = tuple(searches[layer].shifts().tolist())
    return {layer: LayerRecord(**fields) for layer, fields in fields_of.items()}


def _activation_fields(name: str, act: UlqActQuantOp, second: bool) -> dict:
    """``scale_d``/``offset_d`` of a ULQ op; ``scale_h``/``offset_h`` for a MatMul's input 1."""
    if not act.ready:
        raise CalibrationError(f"layer '{name}': ULQ clips were never initialized")
    with torch.no_grad():
        scale, offset = ulq_scale_offset(*act.clips(), act.num_bits)
    if second:
        return {"scale_h": float(scale), "offset_h": int(offset)}
    return {"scale_d": float(scale), "offset_d": int(offset)}


@torch.no_grad()
def _weight_scale(module: nn.Module, op: nn.Module) -> torch.Tensor:
    if isinstance(op, UlqRetrainWeightOp):
        return op.scale().float().cpu()
    weight = tensor_at(module, module.onnx_mapping[op.weight_name])
    return op.scale(weight).float().cpu()
