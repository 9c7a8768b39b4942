"""``quantize_model``: the calibration step of AMCT's PTQ flow (docs/amct.md §1, §4.1-4.4).

entry prelude (:mod:`qdqforge.front.prelude`) -> the ``ptq_modified_graph`` recipe
(:mod:`qdqforge.front.recipes`: canonicalize -> fold_bn (``do_fusion``) -> apply_balance
(recorded DMQ factors) -> arq_weights); that graph is the modified ONNX file (BN folded, balance
Muls, ARQ weights), and ``scale_w``/``offset_w`` go into the record at once. Then the
``calibration`` recipe (act_observe) -> reimport: the returned module runs the modified model
with float activations; after ``batch_num`` forwards each layer's ``scale_d``/``offset_d`` (IFMR
or HFMG on the balanced input) are in the record (:mod:`qdqforge.front.ptq.calibration`) and
later forwards are fake-quantized on that grid.
Layers with ``wts_algo: "ada_quantize"`` start on ARQ's weights; their inputs are gathered during
those forwards and AdaRound rewrites their weights (module and modified ONNX) before the scales
are written (:mod:`qdqforge.front.ptq.adaround`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from torch import nn

from qdqforge.errors import ConfigError
from qdqforge.front.config.enabled import require_enabled
from qdqforge.front.config.grouped_transpose import refuse_channel_wise
from qdqforge.front.config.ptq import QuantConfig
from qdqforge.front.config.ptq_load import load_quant_config
from qdqforge.front.entry.example_inputs import inputs_path, save_example_inputs
from qdqforge.front.entry.input_guard import guard_inputs
from qdqforge.front.export.io_names import check_io_names, rename_io
from qdqforge.front.prelude import run_prelude
from qdqforge.front.ptq.ada_sites import ada_layers
from qdqforge.front.ptq.adaround import AdaRoundStep
from qdqforge.front.ptq.calibration import CalibrationRecorder
from qdqforge.front.recipes import calibration, ptq_modified_graph, recorded_factors
from qdqforge.front.record.file import read_record, update_records
from qdqforge.graph import io
from qdqforge.graph.detached import (
    constant_bytes,
    graph_with_arrays,
    keep_producer,
    reap_dropped,
    to_proto_detached,
)
from qdqforge.graph.ir import Graph
from qdqforge.graph.path_roles import check_roles
from qdqforge.passes.grids.weight_grid import weight_type_field
from qdqforge.runtime import reimport
from qdqforge.runtime.converters.qdqforge_observers import share_observers

log = logging.getLogger(__name__)


def quantize_model(
    config_file: str | os.PathLike,
    modfied_onnx_file: str | os.PathLike | None = None,
    record_file: str | os.PathLike | None = None,
    model: nn.Module | None = None,
    input_data=None,
    input_names=None,
    output_names=None,
    dynamic_axes=None,
    *,
    modified_onnx_file: str | os.PathLike | None = None,
) -> nn.Module:
    """Write the modified ONNX and ``scale_w``; return the activation calibration module.

    Args:
        config_file: PTQ JSON config.
        modfied_onnx_file: where to write the modified ONNX (AMCT's spelling; the keyword
            ``modified_onnx_file`` works too); ``input_data`` goes beside it as
            ``<file>.inputs.npz`` for ``save_model``'s verification.
        record_file: record file (with ``tensor_balance_factor`` when the config uses DMQ).
        model: the float torch model (left untouched).
        input_data: example input, a tensor or a tuple of tensors.
        input_names: optional names of the modified ONNX's inputs.
        output_names: optional names of its outputs.
        dynamic_axes: accepted for AMCT compatibility; the batch axis is always dynamic.

    Returns:
        The calibration module (outputs as the modified ONNX's).

    Raises:
        ModelError: a float64/float16/bfloat16 parameter, buffer or input (entry/model_dtype.py).
        ConfigError: invalid config or arguments.
        RecordError: DMQ layers without recorded factors.
        OutputError: ``modified_onnx_file``, ``record_file`` and the config are not three
            different files (checked before anything is written), or one cannot be written.
    """
    onnx_file = _onnx_path(modfied_onnx_file, modified_onnx_file)
    if record_file is None or model is None:
        raise ConfigError("quantize_model needs record_file, model and input_data")
    check_roles(
        "quantize_model",
        inputs={"config_file": config_file},
        outputs={
            "modified_onnx_file": onnx_file,
            "record_file": record_file,
            "example inputs": inputs_path(onnx_file),
        },
    )
    check_io_names(input_names, output_names, "quantize_model")
    # input_data None too: an InputDataError
    entry = run_prelude("quantize_model", model, input_data, config_file, load_quant_config)
    config, inputs = entry.config, entry.inputs
    require_enabled(config, entry.layers, config_file, "quant_enable", "quantize_model")
    refuse_channel_wise(config, model)
    modified = ptq_modified_graph(config, recorded_factors(config, record_file))
    # the passes run on a graph holding its own arrays, the exported proto dropped first (run
    # on the proto, ARQ's float weights, loaded from it, stayed beside it and the quantized ones),
    # and rewrite it in place: a copy shares its arrays, so the float weights would stay too
    exported = graph_with_arrays(entry.proto)  # the user's weights as read-only views
    del entry
    graph = modified.run(exported, consume=True)
    keep_producer(exported, graph)
    del exported
    reap_dropped(constant_bytes(graph))  # the float weights ARQ replaced
    ada = ada_layers(
        graph, config, modified.context.arq_weights
    )  # a layer AdaRound cannot take fails
    rename_io(graph, input_names, output_names, "quantize_model")
    io.save(graph, onnx_file)
    save_example_inputs(onnx_file, inputs)  # for save_model's sim = deploy check
    own_scale_w = _record_weight_scales(record_file, modified.context.arq_weights.scale_w, config)
    observed = calibration(config).run(graph)
    del graph
    module = guard_inputs(_reimport_shared(observed).train(model.training), inputs)
    reap_dropped(constant_bytes(observed))  # the modified graph (its arrays ARQ's replaced)
    share_observers(module)  # one pass per observed tensor (q/k/v, conv + downsample)
    step = AdaRoundStep(ada, onnx_file) if ada else None
    if step is not None:
        step.attach(module)
    recorder = CalibrationRecorder(record_file, config.batch_num, step, own_scale_w)
    module.register_forward_hook(recorder)
    return module


def _reimport_shared(graph: Graph) -> nn.Module:
    """The module of ``graph`` holding the graph's own weight arrays (no copy of the weights:
    the caller drops the graph)."""
    proto, tensors = to_proto_detached(graph)
    return reimport(proto, tensors=tensors)


def _onnx_path(misspelt, correct) -> str | os.PathLike:
    if (misspelt is None) == (correct is None):
        raise ConfigError("give exactly one of modfied_onnx_file / modified_onnx_file")
    return misspelt if correct is None else correct


def _record_weight_scales(record_file, scales: dict, config: QuantConfig) -> dict[str, list]:
    """Write ARQ's weight scales; returns ``{layer: scale_w}`` as the file now holds them.

    Every other entry of an existing record (a layer this config disables or leaves out, an
    activation MatMul) loses its grids, keeping only DMQ's ``tensor_balance_factor`` and
    ``skip_fusion``: ``save_model`` quantizes what the record holds, so an earlier run's scales
    would quantize a layer this config leaves float, or outlive a calibration that stops early.
    """
    stale = dict.fromkeys(("scale_d", "offset_d", "act_type", "scale_h", "offset_h"))
    updates = {  # an earlier calibration's activation grid must not outlive the new weights
        layer: {"scale_w": s, "offset_w": [0] * len(s), **stale} for layer, s in scales.items()
    }
    for layer in config.layers:  # the savers put the weights on the recorded grid (weight_grid)
        if layer.name in updates and layer.weight_quant_params is not None:
            updates[layer.name]["dst_type"] = weight_type_field(config.weight_bits(layer))
    earlier = read_record(record_file) if Path(record_file).exists() else {}
    grids = dict.fromkeys(("scale_w", "offset_w", "shift_bit", "dst_type", *stale))
    updates |= {layer: dict(grids) for layer in earlier if layer not in updates}
    update_records(record_file, updates)
    written = read_record(record_file)
    return {layer: list(written[layer].scale_w) for layer in scales}
