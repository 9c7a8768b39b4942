"""Compiled CPU QAT kernels (runtime/kernels/csrc/fake_quant_cpu.cpp via cpu_ext.py) vs the
Python paths of runtime/kernels/ulq.py and ulq_weight.py, on the fused-kernel cases (ties, clip
edges, 4/8 bits, float32/64, all-zero and |min| > |max| weight rows).

Forward values and ``dL/dx``/``dL/dW``: ``torch.equal``. Clip and scale gradients are sums in
another order: ``|compiled - ref| <= 1e-5 * sum |terms|`` (1e-12 in float64). The kernels must
build wherever g++ and ninja exist; elsewhere these tests skip (the fallback has its own test).
"""

from __future__ import annotations

import logging
import os
import shutil

import pytest
import torch

from qdqforge.runtime.kernels import cpu_ext, ulq, ulq_dispatch, ulq_weight
from tests.helpers.ulq_cases import (
    act_cases,
    arq_cases,
    assert_same_act_gradients,
    close_sums,
    leaves,
    ulq_weight_cases,
)

HAS_TOOLCHAIN = shutil.which("g++") is not None and shutil.which("ninja") is not None


@pytest.fixture(scope="module")
def ops():
    if not HAS_TOOLCHAIN:
        pytest.skip("no g++/ninja: the compiled CPU kernels cannot be built here")
    built = cpu_ext.cpu_ops()
    assert built is not None, "g++ and ninja exist, so the CPU kernels must build (see the log)"
    return built


def backward_names(t: torch.Tensor) -> list[str]:
    """Names of every node of ``t``'s autograd graph."""
    names, todo = [], [t.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None:
            names.append(node.name())
            todo += [edge[0] for edge in node.next_functions]
    return names


@pytest.mark.parametrize("case", act_cases(), ids=lambda c: c.name)
def test_ulq_act_compiled_vs_reference(ops, case):
    x, cmax, cmin = leaves(case.x, case.clip_max, case.clip_min)
    xr, cmax_r, cmin_r = leaves(case.x, case.clip_max, case.clip_min)
    cmin_rf = torch.zeros_like(cmax_r) if case.fixed_min else cmin_r
    y = ops.ulq_act(x, cmax, None if case.fixed_min else cmin, case.bits)
    y_ref = ulq.UlqActFakeQuant.apply(xr, cmax_r, cmin_rf, case.bits, torch.round)
    assert torch.equal(y, y_ref)
    assert_same_act_gradients(case, y, y_ref, (x, cmax, cmin), (xr, cmax_r, cmin_r))
    assert cmax.grad.dtype == cmax.dtype and cmax.grad.shape == cmax.shape
    assert (cmin.grad is None) == case.fixed_min


@pytest.mark.parametrize("case", arq_cases(), ids=lambda c: c.name)
def test_arq_retrain_compiled_vs_reference(ops, case):
    (m,) = leaves(case.m)
    y = ops.arq_retrain(m, case.bits, case.channel_wise)
    y_ref = ulq_weight.ArqRetrainFakeQuant.apply(case.m, case.bits, case.channel_wise, torch.round)
    assert torch.equal(y, y_ref)
    y.backward(case.grad)
    assert torch.equal(m.grad, case.grad)


@pytest.mark.parametrize("case", ulq_weight_cases(), ids=lambda c: c.name)
def test_ulq_weight_compiled_vs_reference(ops, case):
    m, s = leaves(case.m, case.scale)
    mr, sr = leaves(case.m, case.scale)
    y = ops.ulq_weight(m, s, case.bits, case.factor)
    y_ref = ulq_weight.UlqWeightFakeQuant.apply(mr, sr, case.bits, case.factor, torch.round)
    assert torch.equal(y, y_ref)
    y.backward(case.grad)
    y_ref.backward(case.grad)
    assert torch.equal(m.grad, mr.grad)
    bound = (case.grad.abs() * 2 ** (case.bits - 1)).sum(dim=1) * case.factor
    close_sums(s.grad, sr.grad, bound, case.m.dtype)
    assert (s.grad != 0).all()


def test_nan_and_inf_follow_the_reference(ops):
    x = torch.tensor([0.5, float("nan"), float("inf"), -float("inf"), 3.0])
    clip_max, clip_min = torch.tensor(2.0), torch.tensor(-1.0)
    assert torch.equal(
        ops.ulq_act(x, clip_max, clip_min, 8).isnan(),
        ulq.ulq_act_fake_quant(x, clip_max, clip_min).isnan(),
    )
    w = torch.tensor([[0.1, float("nan"), 0.3], [0.2, float("inf"), -0.1], [0.5, -0.25, 1.0]])
    got, ref = (
        ops.arq_retrain(w, 8, True),
        ulq_weight.ArqRetrainFakeQuant.apply(w, 8, True, torch.round),
    )
    assert torch.equal(got.isnan(), ref.isnan())
    assert torch.equal(got[2], ref[2])


def test_empty_tensors(ops):
    x, clip_max = torch.empty(0, 3, requires_grad=True), torch.tensor(2.0, requires_grad=True)
    y = ops.ulq_act(x, clip_max, None, 8)
    y.sum().backward()
    assert y.shape == (0, 3) and float(clip_max.grad) == 0.0
    w = torch.empty(0, 4, requires_grad=True)
    assert ops.arq_retrain(w, 8, True).shape == (0, 4)
    scale = torch.empty(0, requires_grad=True)
    ops.ulq_weight(w, scale, 8, 1.0).sum().backward()
    assert w.grad.shape == (0, 4) and scale.grad.shape == (0,)


def test_sums_do_not_depend_on_the_thread_count(ops):
    gen = torch.Generator().manual_seed(3)
    x, grad = torch.randn(40_000, generator=gen) * 3, torch.randn(40_000, generator=gen)
    results, threads = [], torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            leaf, clip_max = x.clone().requires_grad_(), torch.tensor(2.5, requires_grad=True)
            ops.ulq_act(leaf, clip_max, None, 8).backward(grad)
            results.append((leaf.grad, clip_max.grad))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def test_bad_arguments_raise(ops):
    with pytest.raises(RuntimeError, match=r"2\.\.16"):
        ops.ulq_act(torch.randn(4), torch.tensor(1.0), None, 1)
    with pytest.raises(RuntimeError, match="3 scales for a weight of 2 output channels"):
        ops.ulq_weight(torch.randn(2, 5), torch.ones(3), 8, 1.0)
    with pytest.raises(RuntimeError, match="output-channel axis"):
        ops.arq_retrain(torch.tensor(1.0), 8, True)


def test_dispatch_takes_the_compiled_ops_on_cpu(ops, monkeypatch):
    monkeypatch.delenv(ulq_dispatch.ENV_SWITCH, raising=False)
    x, clip_max = torch.randn(2, 3, 5, requires_grad=True), torch.tensor(2.0, requires_grad=True)
    y = ulq_dispatch.ulq_act_fake_quant(x, clip_max, torch.tensor(-1.0))
    assert "UlqAct" in y.grad_fn.name() and "CppNode" in y.grad_fn.name()
    w = torch.randn(4, 3, 2, 2, requires_grad=True)  # ConvTranspose layout, groups 2
    got = ulq_dispatch.arq_retrain_fake_quant(w, 8, True, channel_axis=1, groups=2)
    assert any("CppNode" in name for name in backward_names(got))
    assert torch.equal(got, ulq_weight.arq_retrain_reference(w, 8, True, channel_axis=1, groups=2))
    monkeypatch.setenv(ulq_dispatch.ENV_SWITCH, "0")
    y = ulq_dispatch.ulq_act_fake_quant(x, clip_max, torch.tensor(-1.0))
    assert y.grad_fn.name() == "UlqActFakeQuantBackward"


@pytest.mark.parametrize("channel_wise", [True, False])
def test_conv_weights_dispatch_without_reshapes(ops, channel_wise):
    gen = torch.Generator().manual_seed(4)
    w = torch.randn(6, 3, 3, 3, generator=gen, requires_grad=True)
    got = ulq_dispatch.arq_retrain_fake_quant(w, 4, channel_wise)
    assert got.shape == w.shape and "CppNode" in got.grad_fn.name()
    assert torch.equal(got, ulq_weight.arq_retrain_reference(w, 4, channel_wise))
    scale = ulq_weight.ulq_weight_init(w, 8, channel_wise).requires_grad_()
    ref_scale = scale.detach().clone().requires_grad_()
    got = ulq_dispatch.ulq_weight_fake_quant(w, scale, 8)
    ref = ulq_weight.ulq_weight_fake_quant(w, ref_scale, 8)
    assert torch.equal(got, ref)
    grad = torch.randn(w.shape, generator=gen)
    got.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(scale.grad, ref_scale.grad, rtol=1e-5, atol=1e-7)


def test_failed_build_falls_back_with_one_warning(monkeypatch, caplog):
    def no_compiler():
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setattr(cpu_ext, "_build", no_compiler)
    monkeypatch.setattr(cpu_ext, "_state", {})
    with caplog.at_level(logging.WARNING, logger=cpu_ext.__name__):
        x = torch.randn(3, 4, requires_grad=True)
        y = ulq_dispatch.ulq_act_fake_quant(x, torch.tensor(1.5), torch.tensor(-0.5))
        ulq_dispatch.ulq_act_fake_quant(x, torch.tensor(1.5), torch.tensor(-0.5))
    assert y.grad_fn.name() == "UlqActFakeQuantBackward"
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "Ninja is required" in warnings[0].getMessage()


def test_a_stale_build_lock_is_removed_and_a_fresh_one_kept(tmp_path, caplog):
    """torch waits on a build folder's ``lock`` without a timeout: one left by a killed build
    would hang every later process (seen: 13 min, every session on the machine asleep)."""
    lock = tmp_path / "lock"
    lock.touch()
    assert not cpu_ext.remove_stale_lock(tmp_path)  # a build in progress keeps its lock
    assert lock.exists()
    old = lock.stat().st_mtime - cpu_ext.STALE_LOCK_SECONDS - 1
    os.utime(lock, (old, old))
    with caplog.at_level(logging.WARNING, logger="qdqforge.runtime.kernels.cpu_ext"):
        assert cpu_ext.remove_stale_lock(tmp_path)
    assert not lock.exists() and "stale build lock" in caplog.text
    assert not cpu_ext.remove_stale_lock(tmp_path)  # no lock: nothing to do


def test_each_checkout_builds_in_its_own_folder(monkeypatch, tmp_path):
    name, _ = cpu_ext.build_flags()
    copies = [tmp_path / "other" / "csrc" / source.name for source in cpu_ext.SOURCES]
    copies[0].parent.mkdir(parents=True)
    for source, copy in zip(cpu_ext.SOURCES, copies, strict=True):
        copy.write_bytes(source.read_bytes())
    monkeypatch.setattr(cpu_ext, "SOURCES", tuple(copies))
    other, _ = cpu_ext.build_flags()
    assert other != name and other.rsplit("_", 1)[0] == name.rsplit("_", 1)[0]


def test_a_compiler_without_openmp_builds_without_it(monkeypatch):
    built = []

    def load(openmp):
        built.append(openmp)
        if openmp:
            raise RuntimeError("cannot find -lgomp")
        return "one-thread kernels"

    monkeypatch.setattr(cpu_ext, "_load", load)
    assert cpu_ext._build() == "one-thread kernels" and built == [True, False]
    (with_name, with_flags), (without_name, without_flags) = map(cpu_ext.build_flags, (1, 0))
    assert "-fopenmp" in with_flags and "-fopenmp" not in without_flags
    assert with_name != without_name  # each its own library


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads /proc/self/maps")
def test_the_kernels_share_torchs_openmp_runtime(ops):
    """Built with -fopenmp, the library needs libgomp.so.1: the one torch loaded serves it, so
    no second copy of that runtime is loaded for it (packages vendoring their own under another
    name, as scikit-learn's ``libgomp-<hash>.so``, are theirs)."""
    with open("/proc/self/maps") as maps:
        files = {line.split()[-1] for line in maps if "/" in line}
    runtimes = {f for f in files if os.path.basename(f).startswith("libgomp.so")}
    assert len(runtimes) <= 1, runtimes
