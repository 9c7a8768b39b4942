"""``qdqforge.analyze``: per-layer quantization report (the "doctor") of a PTQ config.

One calibrated :class:`~qdqforge.front.analysis.doctor.probe_model.ProbeModel` (the PTQ float graph
with a switch on every layer's input activation and weight), then forwards of ``input_data``:

    float                      -> reference output r, per-channel input ranges of every layer
    all layers quantized       -> Report.model            (the fake-quant model)
    per layer L:
      L weight + activation    -> quantized      (ranking key)
      L weight only            -> weight_only
      L activation only        -> activation_only
      all layers but L         -> without        (fidelity if L alone were skipped)
    all layers but the skips   -> Report.with_skips

Each is compared with r by SQNR / cosine / relative L2 (:mod:`.fidelity`); the skip rule is in
:mod:`.skip`. The model runs in eval mode (dropout off) so differences are quantization only.
Weights are rounded by ARQ (to nearest), ``ada_quantize`` layers too (a warning says so).
"""

from __future__ import annotations

import logging
import os

import numpy as np
from torch import nn

from qdqforge.front.analysis.doctor.fidelity import fidelity
from qdqforge.front.analysis.doctor.probe_model import ProbeModel, build_probe_model
from qdqforge.front.analysis.doctor.report import Report
from qdqforge.front.analysis.doctor.skip import DEFAULT_SKIP_DB, choose_skips, rank_layers
from qdqforge.front.analysis.sensitivity_probe import doctor_layer_reports
from qdqforge.front.config.ptq_load import load_quant_config
from qdqforge.front.prelude import run_prelude
from qdqforge.front.ptq.ada_sites import warn_rounded_like_arq
from qdqforge.front.record.file import read_record

log = logging.getLogger(__name__)


def analyze(
    config_file: str | os.PathLike,
    model: nn.Module,
    input_data,
    record_file: str | os.PathLike | None = None,
    *,
    skip_db: float = DEFAULT_SKIP_DB,
) -> Report:
    """Measure how much each layer's quantization costs the model's output.

    Args:
        config_file: PTQ JSON config; its enabled layers are analyzed.
        model: the float torch model (left untouched).
        input_data: a tensor or a tuple of tensors: calibrates (unless the record has
            ``scale_d``) and is the batch every fidelity is measured on.
        record_file: optional record; its ``tensor_balance_factor`` and ``scale_d``/``offset_d``
            are used instead of measuring them, and its values are shown per layer.
        skip_db: advise skipping layers this many dB below the median layer's SQNR.

    Returns:
        The :class:`Report` (``to_json``, ``write_html``, ``write_skip_config``).

    Raises:
        ConfigError: invalid config (every violation listed), or an enabled MatMul between two
            activations (not probed yet; named).
        RecordError: the record cannot be read.
        InputDataError: ``input_data`` is not a tensor or a tuple of tensors.
        ModelError: a float64/float16/bfloat16 parameter, buffer or input (entry/model_dtype.py).
        ExportError: the model cannot be exported.
    """
    load = load_quant_config  # config_first: a bad file fails before the export (seconds)
    entry = run_prelude("analyze", model, input_data, config_file, load, config_first=True)
    config = entry.config
    warn_rounded_like_arq(config, "doctor")
    records = read_record(record_file) if record_file is not None else {}
    probe = build_probe_model(entry.proto, entry.inputs, config, records)
    reference = probe.run(observe=True)
    types = {layer.name: layer.layer_type for layer in entry.layers}
    layers = doctor_layer_reports(probe, reference, types, config, records)
    return _report(probe, layers, reference, config, skip_db)


def _everything(probe: ProbeModel, but=()) -> tuple[set[str], set[str]]:
    return set(probe.probes) - set(but), set(probe.weights) - set(but)


def _report(probe: ProbeModel, layers, reference: np.ndarray, config, skip_db) -> Report:
    skip = choose_skips(layers, skip_db)
    analyzed = set(probe.layers)
    enabled = [c.name for c in config.layers if c.quant_enable]
    return Report(
        config=config,
        layers=layers,
        model=fidelity(reference, probe.run(*_everything(probe))),
        with_skips=fidelity(reference, probe.run(*_everything(probe, skip))),
        ranking=tuple(rank_layers(layers)),
        skip=tuple(skip),
        skip_db=skip_db,
        disabled=tuple(c.name for c in config.layers if not c.quant_enable),
        not_analyzed={
            name: "no int8 activation observer for this layer type yet (activation MatMul)"
            for name in enabled
            if name not in analyzed
        },
    )
