"""QAT runtime ops: ULQ clip init and fallbacks, weight ops, search-N, DataParallel replicas."""

from __future__ import annotations

import copy

import pytest
import torch

from qdqforge.errors import QdqforgeError
from qdqforge.runtime import distributed
from qdqforge.runtime.calibration.ifmr import IfmrObserver
from qdqforge.runtime.kernels.quant_math import FLT_EPSILON
from qdqforge.runtime.kernels.search_n import SearchNObserver
from qdqforge.runtime.kernels.ulq import (
    clearly_valid_clips,
    sanitize_scalar_clips,
    ulq_act_fake_quant,
    ulq_clips_from_scale,
)
from qdqforge.runtime.kernels.ulq_weight import arq_retrain_fake_quant, ulq_weight_init
from qdqforge.runtime.modules.qat_act import UlqActQuantOp
from qdqforge.runtime.modules.qat_search_n import SearchNOp
from qdqforge.runtime.modules.qat_weight import ArqRetrainWeightOp, UlqRetrainWeightOp


def batches(n: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, 5, 5, generator=gen) * (i + 1) for i in range(n)]


def test_ulq_init_is_ifmr_over_batch_num_forwards_then_quantizes():
    op, xs = UlqActQuantOp("conv", 8, fixed_min=False, batch_num=2), batches(3)
    y0, s0 = op(xs[0])
    assert torch.equal(y0, xs[0]) and s0 is None and not op.ready
    y0.sum().backward()  # the clips take part (weight 0) so DDP sees them used
    assert float(op.clip_max.grad) == 0.0 and float(op.clip_min.grad) == 0.0
    op(xs[1])
    ref = IfmrObserver(symmetric=True, expected_batches=2, layer="conv")
    for x in xs[:2]:
        ref.update(x)
    params = ref.compute()
    clip_max, clip_min = ulq_clips_from_scale(params.scale, params.offset)
    assert op.ready and int(op.init_batches) == 2
    assert (float(op.clip_max), float(op.clip_min)) == pytest.approx((clip_max, clip_min))
    y2, s2 = op(xs[2])
    assert torch.equal(y2, ulq_act_fake_quant(xs[2], op.clip_max, op.clip_min))
    assert s2 is None  # training: search-N gathers nothing, so no scale is computed
    _, s3 = op.eval()(xs[2])
    assert float(s3) == pytest.approx((clip_max - clip_min) / 255)


def test_fixed_min_has_no_clip_min_parameter():
    op = UlqActQuantOp("conv", 8, fixed_min=True, batch_num=1, clips=(4.0, -2.0))
    assert [name for name, _ in op.named_parameters()] == ["clip_max"]
    y, _ = op(torch.linspace(-3, 5, 50))
    assert float(y.min()) == 0.0 and float(y.max()) == pytest.approx(4.0)


def test_invalid_clips_fall_back_and_are_written_back_in_training():
    op = UlqActQuantOp("conv", 8, fixed_min=False, batch_num=1, clips=(3.0, -1.0))
    x = torch.linspace(-4, 4, 64)
    expected, _ = op(x)
    with torch.no_grad():
        op.clip_max.fill_(-0.5)
        op.clip_min.fill_(0.25)
    op.eval()
    assert torch.equal(op(x)[0], expected) and float(op.clip_max) == -0.5  # eval: no write
    op.train()
    assert torch.equal(op(x)[0], expected)
    assert (float(op.clip_max), float(op.clip_min)) == (3.0, -1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_training_forwards_remember_the_latest_valid_clips(dtype):
    op = UlqActQuantOp("conv", 8, fixed_min=False, batch_num=1, clips=(3.0, -1.0)).to(dtype)
    x = torch.linspace(-4, 4, 64, dtype=dtype)
    with torch.no_grad():
        op.clip_max.fill_(2.5)
    op.eval()(x)
    assert op.prev_clips.tolist() == [3.0, -1.0]  # eval forwards leave the state alone
    op.train()(x)
    assert op.state_dict()["prev_clips"].tolist() == [2.5, -1.0]
    expected, _ = op(x)
    with torch.no_grad():
        op.clip_max.fill_(-1.0)  # invalid: falls back to 2.5, not to the initial 3.0
    assert torch.equal(op(x)[0], expected) and float(op.clip_max) == 2.5
    copied = copy.deepcopy(op)  # its own prev_clips memory, not a stale view of the original's
    with torch.no_grad():
        copied.clip_max.fill_(1.5)
    copied(x)
    assert copied.prev_clips.tolist() == [1.5, -1.0] and op.prev_clips.tolist() == [2.5, -1.0]


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_clearly_valid_clips_never_disagrees_with_the_float32_rule(bits):
    eps_range = FLT_EPSILON * (2**bits - 1)
    ranges = [eps_range * f for f in (0.5, 0.999999, 1.0, 1.000001, 1.5, 1.999999, 2.0, 2.5, 1e6)]
    for width in ranges:
        for clip_max, clip_min in ((width, 0.0), (width / 2, -width / 2), (-width, 0.0)):
            clip_max, clip_min = (
                float(torch.tensor(c, dtype=torch.float32)) for c in (clip_max, clip_min)
            )
            kept = sanitize_scalar_clips(clip_max, clip_min, 9.0, -9.0, bits) == (
                clip_max,
                clip_min,
            )
            assert kept or not clearly_valid_clips(clip_max, clip_min, bits), (width, clip_max)


def test_state_dict_round_trip_marks_ready():
    src = UlqActQuantOp("conv", 8, fixed_min=False, batch_num=1)
    src(batches(1)[0])
    dst = UlqActQuantOp("conv", 8, fixed_min=False, batch_num=1)
    assert not dst.ready
    dst.load_state_dict(src.state_dict())
    assert dst.ready and torch.equal(dst.clip_max, src.clip_max)


def test_weight_ops():
    w = torch.randn(6, 4, 3, 3, requires_grad=True)
    arq = ArqRetrainWeightOp("conv", 8, channel_wise=True)
    w_q, scale = arq(w)
    assert scale is None and torch.equal(w_q, arq_retrain_fake_quant(w))
    assert torch.equal(arq.eval()(w)[1], ulq_weight_init(w))
    ulq = UlqRetrainWeightOp("conv", 4, ulq_weight_init(w, 4))
    assert [name for name, _ in ulq.named_parameters()] == ["scale_log_ratio"]
    w_q, scale = ulq(w)
    w_q.square().sum().backward()
    assert torch.equal(scale, ulq.scale_init) and (ulq.scale_log_ratio.grad != 0).any()


def test_search_n_eval_only_with_bn_factor_and_restarts_after_training():
    op = SearchNOp("conv", channels=3, channel_axis=1, bn_epsilon=1e-5)
    y, s_d, s_w = torch.randn(2, 3, 4, 4) * 50, torch.tensor(0.02), torch.tensor([0.01, 0.02, 0.04])
    gamma, var = torch.tensor([0.5, -2.0, 1.0]), torch.tensor([1.0, 4.0, 0.25])
    bn = (gamma, var, torch.tensor([0.1, -0.2, 0.3]), torch.tensor([0.0, 1.0, -1.0]))
    assert op(y, s_d, s_w, *bn) is y and int(op.batches) == 0  # training
    op.eval()
    op(y, s_d, s_w, *bn)
    deq = s_d * (s_w * (gamma / torch.sqrt(var + 1e-5)).abs())  # the op's float order; no floor
    ref = SearchNObserver(3, 1, "conv")
    ref.update(torch.round(y / deq[:, None, None]))
    assert torch.equal(op.error, ref.error) and torch.equal(op.shifts(), ref.compute())
    op.train()(y, s_d, s_w, *bn)
    op.eval()(y * 2, s_d, s_w, *bn)
    assert int(op.batches) == 1 and not torch.equal(op.error, ref.error)
    assert op(y, None, s_w) is y and int(op.batches) == 1  # clips not initialized yet


def test_search_n_floors_the_scale_of_a_zero_gamma_channel():
    """gamma 0 (timm's zero-init last BN): y is the constant folded bias b'; the accumulator's
    scale would be 0 (NaN/inf statistics). Floored: b' sits at 2^30 steps, b' = 0 at 0 steps."""
    op = SearchNOp("conv", channels=4, channel_axis=1, bn_epsilon=1e-5).eval()
    s_d, s_w = torch.tensor(0.02), torch.tensor([0.01, 0.02, 0.04, 0.03])
    gamma, var = torch.tensor([0.0, 0.0, 1e-9, 1.0]), torch.ones(4)
    beta, mean, bias = torch.tensor([0.5, 0.0, -0.3, 0.1]), torch.zeros(4), torch.zeros(4)
    deq = op.deq_scale(s_d, s_w, gamma, var, beta, mean, bias)
    g = gamma / torch.sqrt(var + 1e-5)
    folded_bias = bias * g + beta
    y = folded_bias[None, :, None, None] + g[None, :, None, None] * torch.randn(2, 4, 3, 3)
    s32 = y / deq[:, None, None]
    assert torch.isfinite(s32).all()
    assert torch.allclose(s32[:, 0], torch.tensor(2.0**30)) and torch.equal(s32[:, 1], 0 * y[:, 1])
    assert torch.allclose(s32[:, 2].abs(), torch.tensor(2.0**30), rtol=1e-6)  # 1e-9: floored
    assert float(deq[3]) == pytest.approx(float(s_d * s_w[3] * g[3]), rel=1e-6)  # untouched
    op(y, s_d, s_w, gamma, var, beta, mean, bias)
    assert int(op.batches) == 1 and torch.isfinite(op.error).all()


def test_search_n_folded_bias_reads_the_layer_bias_times_gemm_beta():
    """b' = (beta_gemm * B - mean) g + beta: the floor of a gamma-0 channel is |b'| / (s_d 2^30)."""
    s_d, s_w, gamma, var = torch.tensor(0.5), torch.tensor([0.25]), torch.zeros(1), torch.ones(1)
    beta, mean, bias = torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([3.0])
    plain = SearchNOp("fc", channels=1, channel_axis=-1, bn_epsilon=1e-5)
    halved = SearchNOp("fc", channels=1, channel_axis=-1, bn_epsilon=1e-5, bias_beta=0.5)
    assert float(plain.deq_scale(s_d, s_w, gamma, var, beta, mean, bias)) == 0.5  # b' = 0: s' = 1
    mean = torch.tensor([1.0])  # b' = -mean * g = 0 too (g = 0); beta carries it
    beta = torch.tensor([2.0**-20])
    got = halved.deq_scale(s_d, s_w, gamma, var, beta, mean, bias)
    assert float(got) == pytest.approx(2.0**-20 / 2.0**30)  # s_d * |b'| / (s_d 2^30)
    g = torch.tensor([0.5]) / torch.sqrt(var + 1e-5)
    want = ((0.5 * bias - mean) * g + beta).abs() / 2.0**30  # s_d s', the floor winning
    got = halved.deq_scale(s_d, torch.tensor([1e-12]), torch.tensor([0.5]), var, beta, mean, bias)
    assert float(got) == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize("op", ["ulq_init", "search_n"])
def test_data_parallel_replica_is_a_clear_error(op):
    if op == "ulq_init":
        module, args = UlqActQuantOp("conv", 8, False, 1), (torch.randn(2, 3),)
    else:
        module = SearchNOp("conv", 3, 1).eval()
        args = (torch.randn(2, 3), torch.tensor(0.1), torch.tensor([0.1]))
    module._is_replica = True  # what nn.parallel.replicate sets on every replica
    with pytest.raises(QdqforgeError, match="DistributedDataParallel"):
        module(*args)


def test_initialized_replica_trains_without_writing_its_broadcast_copies():
    op = UlqActQuantOp("conv", 8, fixed_min=False, batch_num=1, clips=(3.0, -1.0))
    op._is_replica = True
    with torch.no_grad():
        op.clip_max.fill_(-1.0)
    y, _ = op(torch.linspace(-4, 4, 64, requires_grad=True))
    y.sum().backward()
    assert float(op.clip_max) == -1.0 and float(op.prev_clips[0]) == 3.0
    assert float(y.max()) == pytest.approx(3.0, abs=0.02)


def test_collectives_are_identities_without_a_process_group():
    x = torch.randn(3, 4)
    assert not distributed.active()
    assert torch.equal(distributed.all_gather_flat(x), x.reshape(-1))
    assert distributed.all_reduce_sum(x) is x
