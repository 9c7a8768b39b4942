"""restore_quant_retrain_model: resumed training repeats the uninterrupted loss sequence exactly.

The checkpoint holds ``qat.state_dict()`` (saved under a DDP ``module.`` prefix here) and the
optimizer state; SGD with momentum makes the optimizer state matter too. Mismatches and files
``torch.load(weights_only=True)`` refuses are CheckpointErrors.
"""

from __future__ import annotations

import json

import pytest
import torch

import qdqforge
from qdqforge.errors import CheckpointError
from qdqforge.front.record.file import LayerRecord, read_record, write_record
from tests.helpers.dmq_flow import build
from tests.helpers.qat_flow import sgd_steps, write_config


class NotATensor:
    """A pickled object that weights_only loading must refuse."""


def momentum_sgd(module):
    return torch.optim.SGD(module.parameters(), lr=0.05, momentum=0.9)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qat_restore")
    model, batches = build("cnn")
    return tmp, model, batches, write_config(tmp, model, batches[0])


def test_resumed_training_repeats_the_uninterrupted_losses(setup):
    tmp, model, batches, cfg = setup
    qat = qdqforge.create_quant_retrain_model(str(cfg), model, str(tmp / "r.txt"), batches[0])
    opt = momentum_sgd(qat.train())
    sgd_steps(qat, opt, batches, 3)
    state = {f"module.{k}": v for k, v in qat.state_dict().items()}
    torch.save({"model": state, "optimizer": opt.state_dict()}, tmp / "ckpt.pth")
    expected = sgd_steps(qat, opt, batches, 4, start=3)

    write_record(tmp / "r.txt", {"conv1": LayerRecord(scale_d=0.5, offset_d=3)})  # saved before
    restored = qdqforge.restore_quant_retrain_model(
        str(cfg), model, str(tmp / "r.txt"), batches[0], str(tmp / "ckpt.pth"), "model"
    )
    opt = momentum_sgd(restored.train())
    opt.load_state_dict(torch.load(tmp / "ckpt.pth", weights_only=True)["optimizer"])
    assert sgd_steps(restored, opt, batches, 4, start=3) == expected
    assert read_record(tmp / "r.txt") == {"conv1": LayerRecord(scale_d=0.5, offset_d=3)}


def test_changed_config_names_the_first_mismatching_layer(setup):
    tmp, model, batches, cfg = setup
    qat = qdqforge.create_quant_retrain_model(str(cfg), model, str(tmp / "r.txt"), batches[0])
    torch.save(qat.state_dict(), tmp / "plain.pth")
    changed = tmp / "changed.json"
    tree = json.loads(cfg.read_text())
    tree["grouped"]["retrain_weight_config"]["algo"] = "ulq_retrain"
    changed.write_text(json.dumps(tree))
    with pytest.raises(CheckpointError, match=r"layer 'grouped' \(the checkpoint has no grouped\."):
        qdqforge.restore_quant_retrain_model(
            str(changed), model, str(tmp / "r.txt"), batches[0], str(tmp / "plain.pth")
        )


def test_unreadable_checkpoints(setup):
    tmp, model, batches, cfg = setup
    torch.save({"model": {"w": torch.zeros(1)}, "extra": NotATensor()}, tmp / "pickled.pth")
    args = (str(cfg), model, str(tmp / "r.txt"), batches[0])
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        qdqforge.restore_quant_retrain_model(*args, str(tmp / "pickled.pth"))
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        qdqforge.restore_quant_retrain_model(*args, str(tmp / "missing.pth"))
    torch.save({"model": {"w": torch.zeros(1)}}, tmp / "nested.pth")
    with pytest.raises(CheckpointError, match="no entry 'state'"):
        qdqforge.restore_quant_retrain_model(*args, str(tmp / "nested.pth"), "state")
    with pytest.raises(CheckpointError, match="give state_dict_name"):
        qdqforge.restore_quant_retrain_model(*args, str(tmp / "nested.pth"))
