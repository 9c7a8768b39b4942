"""Fused Triton kernels compiled for and run on a real CUDA device vs the plain-torch references on
the same device, on the cases of test_ulq_triton.py (ties, clip edges, several blocks, 8/4 bits,
float32/64). Skipped without CUDA and triton; run this file in its own pytest process, since
test_ulq_triton.py sets ``TRITON_INTERPRET=1`` when it is collected.

Forward and ``dL/dx``/``dL/dW``: ``torch.equal``; the forward also equals the reference on CPU
(what the compiled CPU kernels and the saved models compute). Clip and scale gradients are sums in
another order: within ``1e-5 * sum |terms|`` (float32), ``1e-12`` (float64).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import pytest
import torch

from tests.helpers import ulq_cases as cases

# no triton import at collection: test_ulq_triton.py must set TRITON_INTERPRET before triton loads
if importlib.util.find_spec("triton") is None or not torch.cuda.is_available():
    pytest.skip("needs a CUDA device and triton", allow_module_level=True)


@pytest.fixture(autouse=True)
def compiled_triton():
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("TRITON_INTERPRET is set (test_ulq_triton.py): run this file alone")


def kernels():
    """The fused and reference modules, imported when a test runs."""
    from qdqforge.runtime.kernels import ulq, ulq_dispatch, ulq_fused, ulq_weight

    return ulq, ulq_dispatch, ulq_fused, ulq_weight


CUDA = torch.device("cuda")


def on_cuda(case):
    """``case`` with every tensor field moved to the CUDA device."""
    moved = {
        f.name: getattr(case, f.name).to(CUDA)
        for f in dataclasses.fields(case)
        if isinstance(getattr(case, f.name), torch.Tensor)
    }
    return dataclasses.replace(case, **moved)


@pytest.mark.parametrize("case", cases.act_cases(), ids=lambda c: c.name)
def test_ulq_act_fused_cuda_vs_reference(case):
    ulq, _, ulq_fused, _ = kernels()
    y = cases.assert_ulq_act_matches(
        on_cuda(case), ulq_fused.FusedUlqActFakeQuant, ulq.UlqActFakeQuant
    )
    cpu_min = torch.zeros_like(case.clip_max) if case.fixed_min else case.clip_min
    y_cpu = ulq.UlqActFakeQuant.apply(case.x, case.clip_max, cpu_min, case.bits, torch.round)
    assert torch.equal(y.cpu(), y_cpu)


@pytest.mark.parametrize("case", cases.arq_cases(), ids=lambda c: c.name)
def test_arq_retrain_fused_cuda_vs_reference(case):
    _, _, ulq_fused, ulq_weight = kernels()
    cpu_case, case = case, on_cuda(case)
    (m,) = cases.leaves(case.m)
    y = ulq_fused.FusedArqRetrainFakeQuant.apply(m, case.bits, case.channel_wise)
    y_ref = ulq_weight.ArqRetrainFakeQuant.apply(case.m, case.bits, case.channel_wise, torch.round)
    assert torch.equal(y, y_ref)
    y_cpu = ulq_weight.ArqRetrainFakeQuant.apply(
        cpu_case.m, case.bits, case.channel_wise, torch.round
    )
    assert torch.equal(y.cpu(), y_cpu)
    y.backward(case.grad)
    assert torch.equal(m.grad, case.grad)


@pytest.mark.parametrize("case", cases.ulq_weight_cases(), ids=lambda c: c.name)
def test_ulq_weight_fused_cuda_vs_reference(case):
    _, _, ulq_fused, ulq_weight = kernels()
    fused, reference = ulq_fused.FusedUlqWeightFakeQuant, ulq_weight.UlqWeightFakeQuant
    cases.assert_ulq_weight_matches(on_cuda(case), fused, reference)


def test_act_op_on_cuda_dispatches_to_fused(monkeypatch):
    from qdqforge.runtime.modules.qat_act import UlqActQuantOp

    ulq, ulq_dispatch, _, _ = kernels()
    monkeypatch.delenv(ulq_dispatch.ENV_SWITCH, raising=False)
    ulq_dispatch._fused_module.cache_clear()
    op = UlqActQuantOp("l", 8, fixed_min=False, batch_num=1, clips=(2.0, -1.5)).to(CUDA)
    x = torch.randn(2, 3, 5, 5, device=CUDA) * 2
    y, _ = op(x)
    y.square().sum().backward()
    assert y.grad_fn.name() == "FusedUlqActFakeQuantBackward"
    cmax, cmin = cases.leaves(torch.tensor(2.0, device=CUDA), torch.tensor(-1.5, device=CUDA))
    y_ref = ulq.ulq_act_reference(x, cmax, cmin)
    y_ref.square().sum().backward()
    assert torch.equal(y, y_ref)
    torch.testing.assert_close(op.clip_max.grad, cmax.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(op.clip_min.grad, cmin.grad, rtol=1e-5, atol=1e-5)


def test_scales_and_grids_equal_on_cuda_and_cpu():
    """Random (not power-of-two) ranges: the scale helpers and ARQ's fused forward give the CPU's
    values bit for bit (CUDA's division by a host scalar multiplies by a rounded reciprocal:
    ``quant_math.divide``)."""
    from qdqforge.runtime.kernels import arq, quant_math

    ulq, _, ulq_fused, ulq_weight = kernels()
    gen = torch.Generator().manual_seed(3)
    hi, lo = torch.rand(4096, generator=gen) * 10, -torch.rand(4096, generator=gen) * 10
    for helper in (quant_math.symmetric_scale, quant_math.asymmetric_scale_offset):
        for bits in (8, 4):
            got, want = helper(lo.to(CUDA), hi.to(CUDA), bits), helper(lo, hi, bits)
            assert all(torch.equal(g.cpu(), w) for g, w in zip(got, want)), helper.__name__
    got, want = ulq.ulq_scale_offset(hi.to(CUDA), lo.to(CUDA)), ulq.ulq_scale_offset(hi, lo)
    assert all(torch.equal(g.cpu(), w) for g, w in zip(got, want))
    m = torch.randn(64, 300, generator=gen) * torch.rand(64, 1, generator=gen)
    assert torch.equal(arq.arq_scale(m.to(CUDA)).cpu(), arq.arq_scale(m))
    y = ulq_fused.FusedArqRetrainFakeQuant.apply(m.to(CUDA), 8, True)
    assert torch.equal(y.cpu(), ulq_weight.ArqRetrainFakeQuant.apply(m, 8, True, torch.round))
