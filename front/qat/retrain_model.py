"""``create_quant_retrain_model``: AMCT's QAT entry point (docs/amct.md §1b, §4.5-4.6).

entry prelude (:mod:`qdqforge.front.prelude`; the export keeps BatchNormalization and
Dropout) -> the ``qat_training`` recipe (:mod:`qdqforge.front.recipes`): canonicalize ->
qat_act_quant (ULQ on each ``retrain_enable`` layer's input) -> qat_weight_quant (arq_retrain /
ulq_retrain on its weight) -> qat_search_n (search-N statistics after the layer, after its BN
when one follows) -> reimport. The returned module trains with any optimizer: BN keeps batch
statistics in ``train()`` and updates its running stats; it is folded only when saving
(docs/amct.md §4.6).

Learnable quantization parameters are named ``<layer>.act_quant.clip_max``,
``<layer>.act_quant.clip_min`` and ``<layer>.weight_quant.scale_log_ratio`` (``ulq_retrain``);
:func:`quant_parameters` splits them from the float weights for their own optimizer group.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from torch import nn

from qdqforge.errors import ConfigError
from qdqforge.front.config.enabled import require_enabled
from qdqforge.front.config.grouped_transpose import refuse_channel_wise
from qdqforge.front.config.qat_load import load_retrain_config
from qdqforge.front.entry.input_guard import guard_inputs
from qdqforge.front.prelude import run_prelude
from qdqforge.front.qat.carried_graph import attach_graph
from qdqforge.front.recipes import qat_training
from qdqforge.front.record.file import write_record
from qdqforge.graph.detached import materialize, to_proto_detached
from qdqforge.graph.path_roles import check_roles
from qdqforge.runtime import reimport

log = logging.getLogger(__name__)

QUANT_MODULES = (".act_quant.", ".weight_quant.")


def create_quant_retrain_model(
    config_file: str | os.PathLike,
    model: nn.Module,
    record_file: str | os.PathLike,
    input_data,
) -> nn.Module:
    """Build the QAT model of ``model`` (AMCT ``create_quant_retrain_model``).

    Args:
        config_file: QAT JSON config (``create_quant_retrain_config``).
        model: the float torch model with its weights loaded; it is left untouched.
        record_file: the record ``save_quant_retrain_model`` fills; created empty here when
            missing (AMCT creates it too), an existing one is left alone.
        input_data: example input, a tensor or a tuple of tensors.

    Returns:
        The trainable QAT module (a torch.fx GraphModule, in ``model``'s train/eval mode).
        Activation clips not given in the config are initialized by IFMR over its first
        ``batch_num`` forwards.

    Raises:
        ModelError: a float64/float16/bfloat16 parameter, buffer or input (entry/model_dtype.py).
        ConfigError: invalid config, or no layer has ``retrain_enable``.
        InputDataError: ``input_data`` is not a tensor or a tuple of tensors.
        ExportError: the model cannot be exported.
        RecordError: ``record_file`` cannot be written.
        OutputError: ``record_file`` is ``config_file``.
    """
    api = "create_quant_retrain_model"
    return build_retrain_model(api, config_file, model, record_file, input_data)


def build_retrain_model(
    api: str, config_file, model: nn.Module, record_file, input_data
) -> nn.Module:
    """:func:`create_quant_retrain_model`, its errors naming the public call ``api``."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_roles(api, inputs={"config_file": config_file}, outputs={"record_file": record_file})
    entry = run_prelude(api, model, input_data, config_file, load_retrain_config)
    config, inputs = entry.config, entry.inputs
    require_enabled(config, entry.layers, config_file, "retrain_enable", api)
    refuse_channel_wise(config, model)
    graph = qat_training(config).run(entry.proto)
    materialize(graph)  # the graph no longer refers into the exported proto: it can go
    del entry  # and the exported proto with it (no weights: the graph holds views of them)
    qat_proto, tensors = to_proto_detached(graph)  # the module takes the graph's arrays
    del graph
    module = guard_inputs(reimport(qat_proto, tensors=tensors).train(model.training), inputs)
    attach_graph(module, qat_proto, tensors)
    if not Path(record_file).exists():  # never clobber a record an earlier save wrote
        write_record(record_file, {})
    log.info("QAT model: %d layers retrained", sum(x.retrain_enable for x in config.layers))
    return module


def quant_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(quant_params, other_params)`` of a QAT model, for two optimizer param groups.

    ``quant_params`` are the ULQ clips and ulq_retrain scales (names containing ``.act_quant.``
    or ``.weight_quant.``); ``other_params`` everything else (weights, biases, BN affine).
    """
    quant, other = [], []
    for name, param in model.named_parameters():
        (quant if any(key in f".{name}" for key in QUANT_MODULES) else other).append(param)
    return quant, other
