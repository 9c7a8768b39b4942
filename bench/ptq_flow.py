"""The AMCT-style PTQ flow through qdqforge's public API, timed and memory-sampled.

``create_quant_config -> [quantize_preprocess + forwards] -> quantize_model -> batch_num
forwards -> save_model``, exactly as a user writes it with ``import qdqforge as amct``. The
``.cfg`` is generated from :class:`PtqSettings`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

import qdqforge as amct
from bench.rss import PeakRss, Stopwatch
from qdqforge.errors import VerificationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PtqSettings:
    """What the generated ``.cfg`` says: DMQ strength (None = off) for every layer, per-layer
    DMQ strengths overriding it (``(layer, alpha)``), skipped layers, activation algorithm,
    layers whose activations are 16-bit (``dst_type: INT16``, AMCT's A16W8), and AdaRound
    weights (``ada_quantize { num_iteration: N }``) when ``ada_iterations`` is set, on every
    layer but ``arq_layers`` (those keep ARQ's round-to-nearest), and 7-bit weights in an int8
    container (``weight_reduce_range: true``) when ``weight_reduce_range``."""

    alpha: float | None = None
    layer_alphas: tuple[tuple[str, float], ...] = ()
    skip_layers: tuple[str, ...] = ()
    activation_algo: str = "ifmr_quantize"  # or "hfmg_quantize"
    int16_layers: tuple[str, ...] = ()
    ada_iterations: int | None = None
    arq_layers: tuple[str, ...] = ()
    weight_reduce_range: bool = False


@dataclass(frozen=True)
class PtqRun:
    """Outputs of one flow: model paths, wall time, extra peak RSS, and a note when save_model's
    own torch-vs-ONNX check failed (it writes the models all the same) or found the default
    session's int8 kernels diverging (``runtime_warnings`` in ``<save>_verify.json``)."""

    fake_quant: Path
    deploy: Path | None
    qdq: Path | None
    seconds: float
    extra_rss_mb: float
    note: str = ""


def cfg_text(settings: PtqSettings, batch_num: int) -> str:
    """The ``config_defination`` text (AMCTConfig protobuf text format)."""
    lines = [f"batch_num: {batch_num}"]
    if settings.weight_reduce_range:
        lines.append("weight_reduce_range: true")
    lines += [f'skip_layers: "{name}"' for name in settings.skip_layers]
    lines.append(f"common_config {{ {_calibration(settings, settings.alpha)} }}")
    overrides = dict(settings.layer_alphas)  # an override replaces common_config as a whole
    special = (*settings.int16_layers, *settings.arq_layers)
    overrides |= {name: overrides.get(name, settings.alpha) for name in special}
    lines += [
        f'override_layer_configs {{ layer_name: "{name}" calibration_config '
        f"{{ {_calibration(settings, alpha, name)} }} }}"
        for name, alpha in overrides.items()
    ]
    return "\n".join(lines) + "\n"


def _calibration(settings: PtqSettings, alpha: float | None, layer: str | None = None) -> str:
    int16 = layer in settings.int16_layers
    text = f"{settings.activation_algo} {{ {'dst_type: INT16 ' if int16 else ''}}}"
    if settings.ada_iterations is not None and layer not in settings.arq_layers:
        text += f" ada_quantize {{ num_iteration: {settings.ada_iterations} }}"
    return text if alpha is None else f"{text} dmq_balancer {{ migration_strength: {alpha} }}"


def _forward(module: torch.nn.Module, batches: list) -> None:
    with torch.no_grad():
        for x in batches:
            module(*x) if isinstance(x, tuple) else module(x)


def _flow(model, batches: list, workdir: Path, settings: PtqSettings) -> str:
    cfg, record, modified = workdir / "config.json", workdir / "record.txt", workdir / "m.onnx"
    (workdir / "quant.cfg").write_text(cfg_text(settings, len(batches)))
    example = batches[0]
    amct.create_quant_config(str(cfg), model, example, config_defination=str(workdir / "quant.cfg"))
    if settings.alpha is not None:
        _forward(amct.quantize_preprocess(str(cfg), str(record), model, example), batches)
    calib = amct.quantize_model(str(cfg), str(modified), str(record), model, example)
    _forward(calib, batches)
    try:
        amct.save_model(str(modified), str(record), str(workdir / "net"))
    except VerificationError as e:  # the models are written; report, then evaluate them anyway
        log.warning("%s: save_model verification failed: %s", workdir.name, e)
        return f"save_model VerificationError: {str(e).split(';')[0]}"
    return ""


def runtime_note(verify_json: Path) -> str:
    """``"runtime warning: qdq at features.0.0"``: per model, the layer where save_model's runtime
    stage found the default session diverging (it reports the first such layer of each model, in
    topological order; "" when none)."""
    if not verify_json.exists():
        return ""
    warnings = json.loads(verify_json.read_text()).get("runtime_warnings") or []
    where = "; ".join(f"{w['model']} at {w['layer']}" for w in warnings)
    return f"runtime warning: {where}" if where else ""


def run_ptq(model, batches: list, workdir: Path, settings: PtqSettings) -> PtqRun:
    """Quantize ``model`` calibrating on ``batches`` (``batch_num = len(batches)``).

    Args:
        model: float torch model in eval mode (left untouched).
        batches: calibration inputs, tensors or tuples of tensors (multi-input models).
        workdir: folder for the config, record and ONNX files (created).
        settings: DMQ / skip / algorithm choice.

    Returns:
        :class:`PtqRun`; ``deploy`` and ``qdq`` are set when qdqforge wrote them.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    with Stopwatch() as clock, PeakRss() as memory:
        note = _flow(model, batches, workdir, settings)
    fake, deploy, qdq = (workdir / f"net_{k}_model.onnx" for k in ("fake_quant", "deploy", "qdq"))
    log.info("%s: %.1f s, +%.0f MB", workdir.name, clock.seconds, memory.extra_mb)
    deploy, qdq = (p if p.exists() else None for p in (deploy, qdq))
    note = "; ".join(filter(None, [note, runtime_note(workdir / "net_verify.json")]))
    return PtqRun(fake, deploy, qdq, clock.seconds, memory.extra_mb, note)
