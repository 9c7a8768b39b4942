"""export -> (rewrite) -> reimport round trip on the four test models (foundation issue proof).

For each model: onnxruntime agrees with torch; the reimported module equals the original in eval
and in train mode (same seed, dropout masks included); one optimizer step gives the same loss and
parameters; state_dict keys match; the user's model is untouched.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import qdqforge
from qdqforge.graph import numerics
from qdqforge.passes.infra.pipeline import rewrite
from tests.helpers import state
from tests.helpers.torch_models import MODEL_NAMES, build

REL_TOL = 1e-5


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.fixture(scope="module", params=MODEL_NAMES)
def exported(request):
    model, inputs = build(request.param)
    before = state.snapshot(model)
    proto = qdqforge.export(model, inputs)
    state.assert_untouched(model, before)
    return request.param, model, inputs, proto


def test_onnxruntime_matches_torch_eval(exported):
    _, model, inputs, proto = exported
    expected = copy.deepcopy(model).eval()(*inputs)
    got = numerics.run(proto, numerics.feeds_for(proto, [x.numpy() for x in inputs]))[0]
    assert rel_err(torch.from_numpy(got), expected) < REL_TOL


def test_dynamic_batch_in_onnxruntime(exported):
    _, model, inputs, proto = exported
    bigger = tuple(torch.cat([x, x[:1]]) for x in inputs)
    got = numerics.run(proto, numerics.feeds_for(proto, [x.numpy() for x in bigger]))[0]
    expected = copy.deepcopy(model).eval()(*bigger)
    assert got.shape == tuple(expected.shape)
    assert rel_err(torch.from_numpy(got), expected) < REL_TOL


def test_state_dict_keys_match_and_load_strictly(exported):
    _, model, _, proto = exported
    reimported = qdqforge.reimport(proto)
    assert list(reimported.state_dict()) == list(model.state_dict())
    reimported.load_state_dict(model.state_dict(), strict=True)
    assert sum(p.numel() for p in reimported.parameters()) == sum(
        p.numel() for p in model.parameters()
    )


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_reimport_equals_original(exported, mode):
    _, model, inputs, proto = exported
    original = copy.deepcopy(model).train(mode == "train")
    reimported = qdqforge.reimport(proto).train(mode == "train")
    torch.manual_seed(123)
    expected = original(*inputs)
    torch.manual_seed(123)
    got = reimported(*inputs)
    assert rel_err(got, expected) < REL_TOL
    for key, value in original.state_dict().items():  # BN running stats moved the same way
        assert rel_err(reimported.state_dict()[key].float(), value.float()) < REL_TOL, key


def test_one_optimizer_step_matches(exported):
    _, model, inputs, proto = exported
    original = copy.deepcopy(model).train()
    reimported = qdqforge.reimport(proto).train()
    losses = []
    for net in (original, reimported):
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        torch.manual_seed(7)
        loss = net(*inputs).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=REL_TOL)
    after = reimported.state_dict()
    for key, value in original.state_dict().items():
        assert rel_err(after[key].float(), value.float()) < REL_TOL, key


def test_rewritten_graph_reimports_and_matches(exported):
    _, model, inputs, proto = exported
    folded = rewrite(proto)
    assert not any(n.op_type == "BatchNormalization" for n in folded.graph.node)
    expected = copy.deepcopy(model).eval()(*inputs)
    ort_out = numerics.run(folded, numerics.feeds_for(folded, [x.numpy() for x in inputs]))[0]
    assert rel_err(torch.from_numpy(ort_out), expected) < REL_TOL
    got = qdqforge.reimport(folded).eval()(*inputs)
    assert rel_err(got, expected) < REL_TOL
    assert np.isfinite(ort_out).all()


def test_unused_weights_are_kept_so_state_dict_loads_strictly():
    class WithUnusedHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.used = torch.nn.Linear(4, 4)
            self.unused = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.used(x)

    model = WithUnusedHead()
    reimported = qdqforge.reimport(qdqforge.export(model, torch.randn(2, 4)))
    assert list(reimported.state_dict()) == list(model.state_dict())
    reimported.load_state_dict(model.state_dict(), strict=True)
