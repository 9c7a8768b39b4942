"""``quantize_preprocess``: the DMQ statistics step of AMCT's PTQ flow (docs/amct.md §1, §1a, §4.4).

entry prelude (:mod:`qdqforge.front.prelude`: checks, export, config) -> the
``dmq_statistics`` recipe (:mod:`qdqforge.front.recipes`: canonicalize -> fold_bn (``do_fusion``,
minus ``skip_fusion_layers``) -> dmq_observe) -> reimport. The returned module computes what the
original model computes; every forward also updates each DMQ layer's running ``max |X|`` and
then rewrites the record file atomically with every layer's ``tensor_balance_factor``. Unlike
AMCT, any number of forwards is fine.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from torch import nn

from qdqforge.errors import ConfigError
from qdqforge.front.config.ptq import QuantConfig
from qdqforge.front.config.ptq_load import load_quant_config
from qdqforge.front.entry.input_guard import guard_inputs
from qdqforge.front.prelude import run_prelude
from qdqforge.front.recipes import dmq_statistics
from qdqforge.front.record.file import LayerRecord, read_record, write_record
from qdqforge.graph import io
from qdqforge.graph.path_roles import check_roles
from qdqforge.runtime import reimport
from qdqforge.runtime.converters.qdqforge_observers import DmqObserverOp

log = logging.getLogger(__name__)


def quantize_preprocess(
    config_file: str | os.PathLike, record_file: str | os.PathLike, model: nn.Module, input_data
) -> nn.Module:
    """Build the DMQ calibration module; its forwards write ``tensor_balance_factor``.

    Args:
        config_file: PTQ JSON config with ``dmq_balancer_param`` on at least one enabled layer.
        record_file: record to create (emptied now, rewritten after every forward).
        model: the float torch model (left untouched).
        input_data: example input, a tensor or a tuple of tensors.

    Returns:
        A torch module with the model's outputs.

    Raises:
        ModelError: a float64/float16/bfloat16 parameter, buffer or input (entry/model_dtype.py).
        ConfigError: invalid config, or no enabled layer has ``dmq_balancer_param``.
        OutputError: ``record_file`` is ``config_file`` (or cannot be written).
    """
    check_roles(
        "quantize_preprocess",
        inputs={"config_file": config_file},
        outputs={"record_file": record_file},
    )
    entry = run_prelude("quantize_preprocess", model, input_data, config_file, load_quant_config)
    _require_dmq(entry.config, config_file)
    graph = dmq_statistics(entry.config).run(entry.proto)
    module = reimport(io.to_proto(graph)).train(model.training)  # dropout etc. as the user's
    write_record(record_file, {})
    module = guard_inputs(module, entry.inputs)
    module.register_forward_hook(_RecordWriter(record_file))
    return module


def _require_dmq(config: QuantConfig, source) -> None:
    if not any(item.dmq_balancer_param is not None and item.quant_enable for item in config.layers):
        raise ConfigError(
            f"{os.fspath(source)}: quantize_preprocess needs at least one enabled layer with "
            "'dmq_balancer_param' (set it through a .cfg given to create_quant_config)"
        )


def _observers(module: nn.Module) -> list[DmqObserverOp]:
    return [m for m in module.modules() if isinstance(m, DmqObserverOp)]


class _RecordWriter:
    """Forward hook: merge every observer's current factors into the record, atomically."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path

    def __call__(self, module: nn.Module, args, output) -> None:
        records = read_record(self.path)
        observers = _observers(module)  # looked up per call: right after deepcopy too
        for observer in observers:
            if observer.seen:
                factors = tuple(float(v) for v in observer.factors().tolist())
                entry = records.get(observer.layer, LayerRecord())
                records[observer.layer] = dataclasses.replace(entry, tensor_balance_factor=factors)
        write_record(self.path, records)
        log.debug("wrote balance factors of %d layers to %s", len(observers), self.path)
