"""``save_quant_retrain_model``: record and fake-quant/deploy ONNX of a trained QAT model.

1. Statistics: if some clips are uninitialized or no eval forward ran since the last training
   step, ``input_data`` runs in eval mode (no gradients, no DDP collectives, mode restored), so
   the record is never empty (AMCT raises "record_file is empty" instead; docs/amct.md §6).
2. Record (:mod:`.qat_record`): ``scale_d``/``offset_d`` from the learned clips, ``scale_w``,
   ``offset_w``, ``shift_bit`` from search-N.
3. Float graph: the module's QAT graph with its trained weights and BN statistics, the QAT nodes
   removed (``qat_strip``), each retrained weight replaced by the value the module's own weight
   quantizer gives it (so the fake-quant model computes with the module's weights, including a
   clamped 127; over 2 GB, each spilled to an unlinked file beside the outputs and read back
   mapped), BN folded (``fold_bn``).
4. BN folding keeps the integer grid (docs/amct.md §4.6): with
   ``g_c = gamma_c / sqrt(var_c + eps)``, ``W'_c = W_c g_c`` is quantized with
   ``scale_w'_c = scale_w_c |g_c|`` (per-tensor scales become per channel), so
   ``W'_c / scale_w'_c = sign(g_c) W_c / scale_w_c``; where gamma is (near) 0 the scale is floored
   by the folded bias so its int32 bias fits (``runtime.kernels.folded_scale``, the definition
   search-N uses too).
5. ``write_quant_models`` (shared with PTQ) writes ``<save_path>_fake_quant_model.onnx`` and
   ``<save_path>_deploy_model.onnx``; the record file gets the adjusted entries.
6. Verification (``verify``): ``input_data`` through the QAT module in eval mode, the fake-quant
   and the deploy ONNX, compared on each activation's integer grid; search-N statistics are
   restored afterwards so the check leaves no trace in the module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os

import numpy as np
import torch
from torch import nn

from qdqforge.errors import ConfigError
from qdqforge.front.config.qat_load import load_retrain_config
from qdqforge.front.entry.inputs import normalize_input_data
from qdqforge.front.qat.carried_graph import qat_module, tensor_at, trained_graph
from qdqforge.front.qat.record import WEIGHT_OPS, ensure_statistics, learned_records, ops_by_layer
from qdqforge.front.recipes import qat_float_graph, qat_fold_bn
from qdqforge.front.record.file import LayerRecord, write_record
from qdqforge.front.save.write_models import (
    SavedModels,
    output_path,
    saved_outputs,
    write_quant_models,
)
from qdqforge.graph import io, meta
from qdqforge.graph.activation_matmul import layer_of_input
from qdqforge.graph.detached import constant_bytes, reap_dropped
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import layer_site
from qdqforge.graph.mapped import SpillFile
from qdqforge.graph.path_roles import check_roles
from qdqforge.passes.qat.qat_search_n import folded_bn
from qdqforge.runtime.kernels.folded_scale import folded_weight_scale
from qdqforge.runtime.modules.qat_act import UlqActQuantOp
from qdqforge.runtime.modules.qat_search_n import statistics_paused

log = logging.getLogger(__name__)


def save_quant_retrain_model(
    config_file: str | os.PathLike,
    model: nn.Module,
    record_file: str | os.PathLike,
    save_path: str | os.PathLike,
    input_data,
    input_names=None,
    output_names=None,
    dynamic_axes=None,
    *,
    verify=True,
) -> SavedModels:
    """Write the record and the fake-quant and deploy models of a trained QAT model.

    Args:
        config_file: the QAT config the model was built with.
        model: the QAT module (DDP/DataParallel wrappers are looked through); not modified,
            except that search-N statistics are gathered from ``input_data`` when missing.
        record_file: record to (over)write with every retrained layer.
        save_path: output prefix (``out/net`` -> ``out/net_fake_quant_model.onnx``).
        input_data: a representative batch (tensor or tuple of tensors), see step 1.
        input_names: optional names of the saved models' inputs.
        output_names: optional names of their outputs.
        dynamic_axes: accepted for AMCT compatibility; the batch axis is always dynamic.
        verify: ``input_data`` through the QAT module (eval), the fake-quant and the deploy ONNX,
            compared on every activation's integer grid (``<save_path>_verify.json``); False
            skips it, a ``VerifyBudget`` changes the budget.

    Returns:
        The paths written (``fake_quant``, ``deploy``).

    Raises:
        ConfigError: ``model`` is not a QAT model, or the config enables other layers than it.
        CalibrationError: clips still uninitialized after ``batch_num`` forwards.
        VerificationError: the saved models disagree with the QAT module beyond the budget.
    """
    check_roles(
        "save_quant_retrain_model",
        inputs={"config_file": config_file},
        outputs={"record_file": record_file, **saved_outputs(save_path)},
    )
    module, inputs = qat_module(model), normalize_input_data(input_data)
    _check_layers(config_file, module)
    ensure_statistics(module, inputs)
    records = learned_records(module)
    graph = qat_float_graph().run(trained_graph(module))
    _fake_quantized_weights(graph, module, save_path)
    factors = bn_factors(graph, records)
    graph = qat_fold_bn().run(graph)
    records = {k: fold_scale(graph, k, r, factors.get(k)) for k, r in records.items()}
    _rename(graph, input_names, output_names)
    write_record(record_file, records)
    if dynamic_axes is not None:
        log.info("dynamic_axes ignored: the batch axis of every input is dynamic")
    reap_dropped(constant_bytes(graph))  # graphs dropped on the way (cycles), e.g. pre-BN-fold
    with statistics_paused(module):  # verification's eval forward must not add statistics
        return write_quant_models(
            graph, records, save_path, verify_inputs=inputs, torch_module=module, verify=verify
        )


@torch.no_grad()
def _fake_quantized_weights(graph: Graph, module: nn.Module, save_path) -> None:
    """Each retrained weight of ``graph`` as the module's weight quantizer outputs it.

    When these weights alone make a model over 2 GB (:data:`qdqforge.graph.io.EXTERNAL_THRESHOLD`)
    each goes to a :class:`~qdqforge.graph.mapped.SpillFile` in the outputs' folder as soon as it
    is computed: the save holds one layer's fake-quantized weight at a time, not all of them
    beside the module's (the writer hands each one's pages back once written)."""
    tensors = graph.gs.tensors()
    ops = list(ops_by_layer(module, WEIGHT_OPS).values())
    weights = [tensor_at(module, module.onnx_mapping[op.weight_name]) for op in ops]
    spill = _spill_file(save_path, sum(w.numel() * w.element_size() for w in weights))
    with spill or contextlib.nullcontext():
        for op, weight in zip(ops, weights):
            values = op(weight)[0].detach().cpu().numpy()
            tensors[op.weight_name].values = spill.put(values) if spill else values
            del values  # spilled: not held beside the next layer's while that one is computed


def _spill_file(save_path, weight_bytes: int) -> SpillFile | None:
    """A spill file in the outputs' nearest existing folder (none is created for it) when
    ``weight_bytes`` need external data; None otherwise, or where no file can be made there
    (the weights are then held in memory, as below the threshold)."""
    if weight_bytes <= io.EXTERNAL_THRESHOLD:
        return None
    folder = output_path(save_path, "fake_quant").resolve().parent
    while not folder.is_dir():
        folder = folder.parent
    try:
        return SpillFile(folder)
    except OSError as e:
        log.warning("no spill file in %s (%s): fake-quantized weights held in memory", folder, e)
        return None


def _check_layers(config_file, module: nn.Module) -> None:
    config = load_retrain_config(config_file)
    wanted = [x.name for x in config.layers if x.retrain_enable]
    built = list(dict.fromkeys(map(layer_of_input, ops_by_layer(module, UlqActQuantOp))))
    for name in [*wanted, *built]:
        if (name in wanted) != (name in built):
            where = "config" if name in wanted else "model"
            raise ConfigError(
                f"{os.fspath(config_file)}: layer '{name}' is retrained only in the {where}; "
                "save with the config the QAT model was built from"
            )


def bn_factors(graph: Graph, records: dict[str, LayerRecord]) -> dict[str, np.ndarray]:
    """``{layer: |gamma / sqrt(var + eps)|}`` for layers whose BN ``fold_bn`` may fold."""
    factors = {}
    for layer in records:
        site = layer_site(graph, layer)
        bn = folded_bn(graph, site.node) if site is not None else None
        if bn is not None:
            gamma, var = (np.asarray(t.values, np.float64) for t in (bn.inputs[1], bn.inputs[4]))
            factors[layer] = np.abs(gamma / np.sqrt(var + bn.attrs.get("epsilon", 1e-5)))
    return factors


def fold_scale(graph: Graph, layer: str, record: LayerRecord, factor) -> LayerRecord:
    """``record`` with the folded weight scale (``scale_w * factor``, floored by the folded bias:
    :func:`~qdqforge.runtime.kernels.folded_scale.folded_weight_scale`) when ``fold_bn`` folded
    the layer's BN."""
    site = layer_site(graph, layer)
    if factor is None or not record.scale_w or graph.meta(site.node).get(meta.PASS) != "fold_bn":
        return record
    per_channel = [
        torch.from_numpy(np.broadcast_to(np.asarray(v, np.float64), factor.shape).copy())
        for v in (record.scale_w, factor, site.node.inputs[2].values)  # the folded bias b'
    ]
    scale = folded_weight_scale(*per_channel, record.scale_d).numpy()
    scale_w = tuple(float(np.float32(s)) for s in scale)
    return dataclasses.replace(record, scale_w=scale_w, offset_w=(0,) * len(scale_w))


def _rename(graph: Graph, input_names, output_names) -> None:
    for tensors, names in ((graph.gs.inputs, input_names), (graph.gs.outputs, output_names)):
        for tensor, name in zip(tensors, names or ()):
            tensor.name = name
