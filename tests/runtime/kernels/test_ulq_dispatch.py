"""Backend choice of the QAT fake quantization (runtime/kernels/ulq_dispatch.py), without triton:
CPU tensors without the compiled kernels, half tensors, the gradcheck rounding hook,
QDQFORGE_FUSED=0 and a missing triton all take the plain-torch reference, whose values and
gradients the public functions then return (the compiled CPU path: test_cpu_ext.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from qdqforge.runtime import kernels
from qdqforge.runtime.kernels import cpu_ext, ulq, ulq_dispatch, ulq_weight


@pytest.fixture
def fresh_backend():
    ulq_dispatch._fused_module.cache_clear()
    yield
    ulq_dispatch._fused_module.cache_clear()


def identity(v: torch.Tensor) -> torch.Tensor:
    return v


def test_cpu_tensors_without_compiled_kernels_take_the_reference(monkeypatch):
    monkeypatch.setattr(cpu_ext, "_state", {"ops": None})  # as if the C++ build had failed
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    assert ulq_dispatch.fused_backend(x) is None
    clip_max = torch.tensor(2.0, requires_grad=True)
    y = ulq_dispatch.ulq_act_fake_quant(x, clip_max, torch.tensor(-1.0))
    assert torch.equal(y, ulq.ulq_act_fake_quant(x, clip_max, torch.tensor(-1.0)))
    y.sum().backward()
    assert clip_max.grad is not None and y.grad_fn.name() == "UlqActFakeQuantBackward"


@pytest.mark.parametrize(
    ("dtype", "rnd", "env"),
    [(torch.float16, torch.round, "1"), (torch.float32, identity, "1"),
     (torch.float32, torch.round, "0")],
    ids=["half", "round_hook", "env_off"],
)  # fmt: skip
def test_reference_forced_even_on_a_fused_device(monkeypatch, dtype, rnd, env):
    monkeypatch.setattr(ulq_dispatch, "FUSED_DEVICES", {"cpu"})
    monkeypatch.setenv(ulq_dispatch.ENV_SWITCH, env)
    assert ulq_dispatch.fused_backend(torch.zeros(3, dtype=dtype), rnd) is None


def test_missing_triton_falls_back(monkeypatch, fresh_backend):
    monkeypatch.setattr(ulq_dispatch, "FUSED_DEVICES", {"cpu"})
    monkeypatch.delenv(ulq_dispatch.ENV_SWITCH, raising=False)
    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` raises ImportError
    for name in ("ulq_fused", "ulq_triton"):  # as if never imported
        monkeypatch.delitem(sys.modules, f"qdqforge.runtime.kernels.{name}", raising=False)
        monkeypatch.delattr(kernels, name, raising=False)
    w = torch.randn(4, 2, 3, 3)
    assert ulq_dispatch.fused_backend(w) is None
    scale = ulq_weight.ulq_weight_init(w)
    assert torch.equal(
        ulq_dispatch.ulq_weight_fake_quant(w, scale), ulq_weight.ulq_weight_reference(w, scale)
    )
    assert torch.equal(ulq_dispatch.arq_retrain_fake_quant(w), ulq_weight.arq_retrain_reference(w))


def test_package_imports_and_trains_without_triton():
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, qdqforge\n"
        "from qdqforge.runtime.modules.qat_act import UlqActQuantOp\n"
        "op = UlqActQuantOp('conv', 8, fixed_min=False, batch_num=1, clips=(2.0, -1.0))\n"
        "op(torch.randn(8))[0].sum().backward()\n"
        "assert op.clip_max.grad is not None and 'triton' not in str(sys.modules.get('triton'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
