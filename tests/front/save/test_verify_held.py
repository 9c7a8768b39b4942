"""The save check holds each weight of the saved models once.

The fake-quant model's weights are, bit for bit, the arrays of the graph it was written from,
which the check holds anyway (PTQ: the reference module wraps them; QAT: the fake-quantized
weights): read back from the file, each is compared and held as the graph's array, not as a
second copy (``held_arrays.hold_file``'s ``known``). The optimized graph of a default session
holds the weights onnxruntime left as they were as the saved model's own arrays. A file that
differs from the graph is held as read (tests/graph/test_held_arrays).
"""

from __future__ import annotations

import json

import torch

import qdqforge
from qdqforge.front.save import verify
from qdqforge.graph import numerics
from tests.helpers import qat_flow
from tests.helpers.deploy_flow import seed_flow


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 8 * 8, 64),  # 512 KiB of float32: held as an array
    ).eval()


def _spy(monkeypatch) -> tuple[dict, list]:
    """Record what each saved model and each optimized graph hold."""
    held, optimized = {}, []
    hold_file, held_optimized = verify.hold_file, numerics.held_optimized_graph

    def spy_hold(path, known=None):
        result = hold_file(path, known=known)
        kind = next(k for k in ("fake_quant", "deploy", "qdq") if k in path.name)
        held[kind] = (result, known or {})
        return result

    def spy_optimized(model):
        result = held_optimized(model)
        optimized.append(result)
        return result

    monkeypatch.setattr(verify, "hold_file", spy_hold)
    monkeypatch.setattr(numerics, "held_optimized_graph", spy_optimized)
    return held, optimized


def _shared(held, known: dict) -> list[str]:
    return [n for n, a in held.arrays.items() if known.get(n) is a]


def _check(paths, held: dict, optimized: list) -> None:
    fake, known = held["fake_quant"]
    float_weights = [n for n, a in fake.arrays.items() if a.dtype.kind == "f"]
    assert float_weights and _shared(fake, known) == float_weights
    assert all(a is not known.get(n) for n, a in held["deploy"][0].arrays.items())  # int8
    fake_arrays = list(fake.arrays.values())
    float_session = optimized[0]  # the fake-quant model's default session, checked first
    assert any(any(a is b for b in fake_arrays) for a in float_session.arrays.values())
    report = json.loads(verify.verify_path(paths.fake_quant.parent / "net").read_text())
    assert report["status"] == "passed"


def test_a_ptq_save_check_holds_the_fake_quant_weights_as_the_graph_s_arrays(tmp_path, monkeypatch):
    held, optimized = _spy(monkeypatch)
    batches = [(torch.randn(2, 3, 10, 10),) for _ in range(2)]
    paths = seed_flow(tmp_path, _model(), batches)
    _check(paths, held, optimized)


def test_a_qat_save_check_holds_the_fake_quant_weights_as_the_graph_s_arrays(tmp_path, monkeypatch):
    held, optimized = _spy(monkeypatch)
    model, x = _model(), torch.randn(2, 3, 10, 10)
    cfg, record = qat_flow.write_config(tmp_path, model, x), tmp_path / "qat.txt"
    qat = qdqforge.create_quant_retrain_model(str(cfg), model, str(record), x)
    qat_flow.train(qat, [x], steps=2)
    paths = qdqforge.save_quant_retrain_model(
        str(cfg), qat.eval(), str(record), str(tmp_path / "net"), x
    )
    _check(paths, held, optimized)
