"""``create_quant_config`` and ``create_quant_retrain_config``: AMCT's config writers.

Both run the entry prelude (:mod:`qdqforge.front.prelude`: a float64/float16/bfloat16
model or input is refused, as by every call that takes a model), which exports the model once to
find its quantizable layers (:mod:`.layers`); then either the function arguments or the ``.cfg``
(``config_defination``) become a config, validated and written as JSON atomically. As in AMCT, a
``.cfg`` makes ``skip_layers``, ``batch_num`` and ``activation_offset`` arguments irrelevant
(logged when they were set). Without a ``.cfg``, grouped ConvTranspose weights default to per
tensor (:mod:`.grouped_transpose`).
"""

from __future__ import annotations

import logging
import os
from typing import Any, NamedTuple

from qdqforge.errors import ConfigError
from qdqforge.front.config.cfg_ptq import build_quant_config
from qdqforge.front.config.cfg_qat import build_retrain_config
from qdqforge.front.config.grouped_transpose import per_tensor_defaults
from qdqforge.front.config.issues import Issues
from qdqforge.front.config.jsonio import write_json
from qdqforge.front.proto.schema import message_class
from qdqforge.front.proto.text import parse_text
from qdqforge.graph.path_roles import check_roles

log = logging.getLogger(__name__)


def create_quant_config(
    config_file,
    model,
    input_data,
    skip_layers=None,
    batch_num=1,
    activation_offset=True,
    config_defination=None,
) -> None:
    """Write the PTQ JSON config for ``model`` (AMCT ``create_quant_config``).

    Args:
        config_file: JSON file to write.
        model: float ``torch.nn.Module``.
        input_data: example input (tensor or tuple of tensors) used to export the model.
        skip_layers: module names written with ``quant_enable: false``.
        batch_num: calibration batches.
        activation_offset: asymmetric activation quantization.
        config_defination: optional ``.cfg`` (AMCTConfig protobuf text); when given the three
            arguments above are ignored.

    Raises:
        ConfigError: invalid arguments or ``.cfg`` (every violation listed).
        InputDataError: ``input_data`` is not a tensor or a tuple of tensors.
        ModelError: a float64/float16/bfloat16 parameter, buffer or input (entry/model_dtype.py).
        ExportError: the model cannot be exported.
        OutputError: ``config_file`` cannot be written, or is ``config_defination``.
    """
    api = "create_quant_config"
    cfg = _given_cfg(api, config_file, config_defination, "AMCTConfig")
    if cfg is not None:
        _warn_ignored(skip_layers, batch_num, activation_offset)
    else:
        cfg = _Cfg(_args_cfg(skip_layers, batch_num, activation_offset), f"{api} arguments", False)
    layers = _build_and_write(api, build_quant_config, cfg, config_file, model, input_data)
    log.info("wrote PTQ config %s (%d layers)", config_file, len(layers))


def create_quant_retrain_config(config_file, model, input_data, config_defination=None) -> None:
    """Write the QAT JSON config for ``model`` (AMCT ``create_quant_retrain_config``).

    Args:
        config_file: JSON file to write.
        model: float ``torch.nn.Module``.
        input_data: example input (tensor or tuple of tensors) used to export the model.
        config_defination: optional ``.cfg`` (AMCTRetrainConfig protobuf text).

    Raises:
        ConfigError: invalid ``.cfg`` (every violation listed).
        InputDataError: ``input_data`` is not a tensor or a tuple of tensors.
        ModelError: a float64/float16/bfloat16 parameter, buffer or input (entry/model_dtype.py).
        ExportError: the model cannot be exported.
        OutputError: ``config_file`` cannot be written, or is ``config_defination``.
    """
    api, message = "create_quant_retrain_config", "AMCTRetrainConfig"
    cfg = _given_cfg(api, config_file, config_defination, message)
    if cfg is None:
        cfg = _Cfg(message_class(message)(), "defaults", False)
    _build_and_write(api, build_retrain_config, cfg, config_file, model, input_data)
    log.info("wrote QAT config %s", config_file)


class _Cfg(NamedTuple):
    """The AMCTConfig/AMCTRetrainConfig message a config is built from, and where it came from."""

    message: Any
    source: str  # the .cfg path, or what stood in for one (named in ConfigError messages)
    from_file: bool


def _given_cfg(api: str, config_file, config_defination, message: str) -> _Cfg | None:
    """``config_defination`` read as ``message``; None when not given.

    The paths are checked first (``config_file`` is written, ``config_defination`` only read).
    """
    check_roles(
        api, inputs={"config_defination": config_defination}, outputs={"config_file": config_file}
    )
    if config_defination is None:
        return None
    return _Cfg(read_cfg(config_defination, message), os.fspath(config_defination), True)


def _build_and_write(api: str, build, cfg: _Cfg, config_file, model, input_data) -> list:
    """What both writers do once the arguments are checked and ``cfg`` is read; the layers.

    Find the model's layers (the entry prelude: exporting takes seconds, so after the cheap
    checks), ``build(cfg.message, layers, cfg.source)`` the config, default grouped
    ConvTranspose weights to per tensor unless ``cfg`` came from a ``.cfg`` file, and write the
    JSON atomically.
    """
    from qdqforge.front.prelude import run_prelude  # imports torch: only when needed

    layers = run_prelude(api, model, input_data).layers
    config = build(cfg.message, layers, cfg.source)
    if not cfg.from_file:
        config = per_tensor_defaults(config, model)
    write_json(config_file, config.to_dict())
    return layers


def read_cfg(path, message: str):
    """Parse a ``.cfg`` file as ``message`` (``"AMCTConfig"`` or ``"AMCTRetrainConfig"``).

    Raises:
        ConfigError: unreadable file, syntax error or unknown field (with line and column).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError, TypeError) as e:
        raise ConfigError(f"cannot read config_defination {path!r}: {e}") from e
    return parse_text(text, message, ConfigError, os.fspath(path))


def _warn_ignored(skip_layers, batch_num, activation_offset) -> None:
    given = [
        name
        for name, value, default in (
            ("skip_layers", skip_layers, None),
            ("batch_num", batch_num, 1),
            ("activation_offset", activation_offset, True),
        )
        if value != default
    ]
    if given:
        log.warning(
            "config_defination is given, so %s are ignored (AMCT behaviour)", ", ".join(given)
        )


def _args_cfg(skip_layers, batch_num, activation_offset):
    issues = Issues("create_quant_config arguments")
    if skip_layers is None:
        skip_layers = []
    if isinstance(skip_layers, str) or not all(isinstance(s, str) for s in skip_layers):
        issues.add("skip_layers", skip_layers, "a list of module names")
        skip_layers = []
    if isinstance(batch_num, bool) or not isinstance(batch_num, int) or not 0 < batch_num < 2**32:
        issues.add("batch_num", batch_num, "integer > 0")
    if not isinstance(activation_offset, bool):
        issues.add("activation_offset", activation_offset, "True or False")
    issues.raise_if_any()
    cfg = message_class("AMCTConfig")(batch_num=batch_num, activation_offset=activation_offset)
    cfg.skip_layers.extend(skip_layers)
    return cfg
