"""Fused Triton kernels (runtime/kernels/ulq_fused.py) vs the plain-torch references, on CPU under
``TRITON_INTERPRET=1`` (no GPU needed; skipped without triton).

Forward: ``torch.equal`` (bit for bit, up to the sign of a zero). ``dL/dx`` and ``dL/dW``:
``torch.equal`` (elementwise selects). Clip and scale gradients are sums in another order, so
``|fused - ref| <= 1e-5 * sum |terms|`` (float32 rounding of the summed terms), 1e-12 in float64.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported: kernels are interpreted
pytest.importorskip("triton")

from triton.runtime.interpreter import InterpretedFunction

from qdqforge.runtime.kernels import ulq, ulq_dispatch, ulq_fused, ulq_triton, ulq_weight
from qdqforge.runtime.modules.qat_act import UlqActQuantOp
from qdqforge.runtime.modules.qat_weight import ArqRetrainWeightOp, UlqRetrainWeightOp
from tests.helpers import ulq_cases as cases

if not isinstance(ulq_triton.rint, InterpretedFunction):
    pytest.skip("ulq_triton was imported before TRITON_INTERPRET=1", allow_module_level=True)


@pytest.mark.parametrize("case", cases.act_cases(), ids=lambda c: c.name)
def test_ulq_act_fused_vs_reference(case):
    cases.assert_ulq_act_matches(case, ulq_fused.FusedUlqActFakeQuant, ulq.UlqActFakeQuant)


@pytest.mark.parametrize("case", cases.arq_cases(), ids=lambda c: c.name)
def test_arq_retrain_fused_vs_reference(case):
    (m,) = cases.leaves(case.m)
    y = ulq_fused.FusedArqRetrainFakeQuant.apply(m, case.bits, case.channel_wise)
    y_ref = ulq_weight.ArqRetrainFakeQuant.apply(case.m, case.bits, case.channel_wise, torch.round)
    assert torch.equal(y, y_ref)
    y.backward(case.grad)
    assert torch.equal(m.grad, case.grad)


@pytest.mark.parametrize("case", cases.ulq_weight_cases(), ids=lambda c: c.name)
def test_ulq_weight_fused_vs_reference(case):
    fused, reference = ulq_fused.FusedUlqWeightFakeQuant, ulq_weight.UlqWeightFakeQuant
    cases.assert_ulq_weight_matches(case, fused, reference)


def test_rint_is_torch_round_on_ties_and_extremes():
    ties = torch.arange(-300, 300, dtype=torch.float32) + 0.5
    special = torch.tensor([0.49999997, -0.49999997, 2.0**23 + 1, -(2.0**24), 1e30, -0.0, 0.0])
    x = torch.cat([ties, special, torch.randn(2000) * 100])
    one = torch.ones(1)
    y = ulq_fused.fake_quant_rows(x, one, None, 32)  # clamp bounds +-2^31: rint(x) alone
    assert torch.equal(y, torch.round(x).clamp(-(2.0**31), 2.0**31 - 1))
    assert torch.equal(torch.signbit(y), torch.signbit(torch.round(x)))


LAYOUTS = {"conv": ((6, 4, 3, 3), 0, 1), "convtranspose_grouped": ((6, 2, 3, 3), 1, 3)}


@pytest.fixture
def fused_on_cpu(monkeypatch):
    """Dispatch as on CUDA, for CPU tensors; counts the fused forward launches."""
    monkeypatch.setattr(ulq_dispatch, "FUSED_DEVICES", {"cpu"})
    monkeypatch.delenv(ulq_dispatch.ENV_SWITCH, raising=False)
    launches = []
    launch = ulq_fused.fake_quant_rows
    monkeypatch.setattr(ulq_fused, "fake_quant_rows", lambda *a: launches.append(1) or launch(*a))
    ulq_dispatch._fused_module.cache_clear()
    yield launches
    ulq_dispatch._fused_module.cache_clear()


def weight_grads(op, w, g):
    w = w.detach().clone().requires_grad_()
    w_q, _ = op(w)
    w_q.backward(g)
    return w_q.detach(), w.grad, [p.grad.clone() for p in op.parameters()]


@pytest.mark.parametrize("name", list(LAYOUTS), ids=list(LAYOUTS))
def test_weight_ops_dispatch_to_fused_by_layout(fused_on_cpu, monkeypatch, name):
    shape, axis, groups = LAYOUTS[name]
    w, g = torch.randn(shape), torch.randn(shape)
    arq = ArqRetrainWeightOp("l", 8, True, axis, groups)
    ulq_op = UlqRetrainWeightOp(
        "l", 4, ulq_weight.ulq_weight_init(w, 4, True, axis, groups), axis, groups
    )
    fused = [weight_grads(op, w, g) for op in (arq, ulq_op)]
    assert len(fused_on_cpu) == 2
    for op in (arq, ulq_op):
        op.zero_grad()
    monkeypatch.setenv(ulq_dispatch.ENV_SWITCH, "0")
    ref = [weight_grads(op, w, g) for op in (arq, ulq_op)]
    assert len(fused_on_cpu) == 2  # QDQFORGE_FUSED=0: the reference ran
    for (y, gw, gp), (y_ref, gw_ref, gp_ref) in zip(fused, ref):
        assert torch.equal(y, y_ref) and torch.equal(gw, gw_ref)
        for got, want in zip(gp, gp_ref):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_act_op_dispatches_to_fused(fused_on_cpu):
    op = UlqActQuantOp("l", 8, fixed_min=False, batch_num=1, clips=(2.0, -1.5))
    x = torch.randn(2, 3, 5, 5) * 2
    y, _ = op(x)
    y.square().sum().backward()
    assert len(fused_on_cpu) == 1 and y.grad_fn.name() == "FusedUlqActFakeQuantBackward"
    cmax, cmin = cases.leaves(torch.tensor(2.0), torch.tensor(-1.5))
    y_ref = ulq.ulq_act_reference(x, cmax, cmin)
    y_ref.square().sum().backward()
    assert torch.equal(y, y_ref)
    torch.testing.assert_close(op.clip_max.grad, cmax.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(op.clip_min.grad, cmin.grad, rtol=1e-5, atol=1e-5)
