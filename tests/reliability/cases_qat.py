"""Catalogue rows: the QAT calls (create, save, restore) and their checkpoints.

A checkpoint of a QAT model built from another config, one that pickles an arbitrary object
(``torch.load(weights_only=True)`` must refuse it), a missing entry, the float model handed to
``save_quant_retrain_model``, wrong ``input_data`` and training batches.
"""

from __future__ import annotations

from pathlib import Path

import torch

import qdqforge
from qdqforge.errors import CheckpointError, ConfigError, InputDataError, OutputError
from tests.reliability.catalogue import Case
from tests.reliability.world import unwritable_dir


class Payload:
    """An arbitrary object in a checkpoint: unpickling it would create the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickled_payload(w):
    marker = w.tmp / "unpickled"
    try:
        return _restore(lambda w: _saved(w, {"w": torch.zeros(1), "x": Payload(marker)}))(w)
    finally:
        assert not marker.exists(), "the checkpoint's pickled object was run"


def _create(w, x=None, config=None):
    x = w.x if x is None else x
    return qdqforge.create_quant_retrain_model(
        str(config or w.qat_config), w.model, str(w.tmp / "qat.txt"), x
    )


def _restore(checkpoint, name=None, config=None):
    def call(w):
        path = checkpoint(w)
        return qdqforge.restore_quant_retrain_model(
            str(config(w) if config else w.qat_config),
            w.model,
            str(w.tmp / "qat.txt"),
            w.x,
            str(path),
            name,
        )

    return call


def _saved(w, obj):
    path = w.tmp / "ckpt.pth"
    torch.save(obj, path)
    return path


def _fc_off(w):
    return w.json_with(lambda t: t["fc"].update(retrain_enable=False), w.qat_config)


def _checkpoint_of_other_config(w):
    return _saved(w, _create(w, config=_fc_off(w)).state_dict())


def _save_qat(model_of, save_path=None, config=None):
    def call(w):
        out = save_path(w) if save_path else w.tmp / "out" / "net"
        return qdqforge.save_quant_retrain_model(
            str(config(w) if config else w.qat_config),
            model_of(w),
            str(w.tmp / "qat.txt"),
            str(out),
            w.x,
        )

    return call


def _train_step(batch):
    def call(w):
        qat = _create(w).train()
        return qat(*batch(w))

    return call


def _qat(name, call, error, match, what) -> Case:
    return Case(f"qat:{name}", what, call, error, match)


CASES = [
    _qat(
        "checkpoint-other-config",
        _restore(_checkpoint_of_other_config),
        CheckpointError,
        "layer 'fc'",
        "a checkpoint of the QAT model built with fc disabled",
    ),
    _qat(
        "checkpoint-pickled-object",
        _pickled_payload,
        CheckpointError,
        "cannot load checkpoint",
        "a checkpoint that pickles an arbitrary object (weights_only refuses it)",
    ),
    _qat(
        "checkpoint-missing",
        _restore(lambda w: w.tmp / "none.pth"),
        CheckpointError,
        "none.pth",
        "a checkpoint path that does not exist",
    ),
    _qat(
        "checkpoint-not-torch",
        _restore(lambda w: w.write("x.pth", b"not a zip")),
        CheckpointError,
        "x.pth",
        "a checkpoint file that is not a torch file",
    ),
    _qat(
        "checkpoint-no-entry",
        _restore(lambda w: _saved(w, {"model": {}}), name="state"),
        CheckpointError,
        "no entry 'state'",
        "state_dict_name missing from the checkpoint",
    ),
    _qat(
        "checkpoint-not-tensors",
        _restore(lambda w: _saved(w, {"epoch": 3})),
        CheckpointError,
        "not a state dict of tensors",
        "a checkpoint dict without tensors",
    ),
    _qat(
        "create-with-ptq-config",
        lambda w: _create(w, config=w.config),
        ConfigError,
        "quant_enable",
        "a PTQ config given to create_quant_retrain_model",
    ),
    _qat("create-list-input", lambda w: _create(w, x=[w.x]), InputDataError, "list", "list"),
    _qat(
        "train-batch-shape",
        _train_step(lambda w: (torch.randn(2, 5, 6, 6),)),
        InputDataError,
        "input 0 has shape (2, 5, 6, 6)",
        "a training batch with 5 channels",
    ),
    _qat(
        "save-float-model",
        _save_qat(lambda w: w.model),
        ConfigError,
        "model (Net) is not a QAT model",
        "the float model handed to save_quant_retrain_model",
    ),
    _qat(
        "save-other-config",
        _save_qat(_create, config=_fc_off),
        ConfigError,
        "layer 'fc'",
        "save_quant_retrain_model with another config than the model's",
    ),
    _qat(
        "save-unwritable",
        _save_qat(_create, save_path=lambda w: unwritable_dir(w.tmp) / "net"),
        OutputError,
        "net",
        "QAT save_path in an unwritable folder",
    ),
]
