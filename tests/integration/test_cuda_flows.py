"""The user's model and data on a CUDA device: PTQ (DMQ + IFMR calibration; HFMG + AdaRound; save
with its verification) and QAT (set-up, SGD steps, save with its verification) run there without a
``.to()`` on what qdqforge returns, and write the records the same flows write on the CPU.
Skipped without CUDA.

Tolerances: PTQ's weight scales equal where the DMQ factors are (ARQ on the same weights; every
scale division divides by a tensor on the device, ``quant_math.divide``). Activation statistics
come from convolutions that cuDNN sums in another order than the CPU (TF32 off): PTQ's
``scale_d``, DMQ factors and the scales of the weights they multiply within 1e-5 relative
(float32 round-off of the activations: measured <= 1.6e-7 on an H200, unless IFMR's choice
flips a candidate: then 1e-2, one search step; that would fail here). QAT's scales after 4 SGD
steps from gradients summed in another order: within 1e-4 relative (measured 7.3e-8).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device", allow_module_level=True)

import qdqforge
from qdqforge.front.record.file import read_record
from tests.helpers.dmq_flow import build, write_config
from tests.helpers.qat_flow import write_config as write_qat_config

CUDA = torch.device("cuda")
PTQ_REL, QAT_REL = 1e-5, 1e-4
# HFMG picks a window of its histogram's bins: an activation ~1e-7 off on the GPU can cross a
# bin edge and move the window by a bin (2.4e-4 relative at 4096 bins, as across DDP ranks)
HFMG_REL = 1e-3


@pytest.fixture(autouse=True)
def no_tf32():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def ptq(tmp, device: torch.device) -> dict:
    """DMQ (``quantize_preprocess``) and IFMR."""
    return _ptq(tmp, device, None)


def ptq_hfmg_adaround(tmp, device: torch.device) -> dict:
    """HFMG activations and AdaRound weights (150 iterations per layer)."""
    return _ptq(tmp, device, "hfmg_quantize { } ada_quantize { num_iteration: 150 }")


def _ptq(tmp, device: torch.device, calibration: str | None) -> dict:
    tmp.mkdir()
    model, batches = build("cnn")
    if calibration is None:
        cfg = write_config(tmp, model, batches[0], dmq=True)
    else:
        cfg, definition = tmp / "config.json", tmp / "q.cfg"
        definition.write_text(f"common_config {{ {calibration} }}\n")
        qdqforge.create_quant_config(str(cfg), model, batches[0], config_defination=str(definition))
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "batch_num": len(batches)}))
    model, xs = model.to(device), [x.to(device) for x in batches]
    record, modified = str(tmp / "record.txt"), str(tmp / "modified.onnx")
    with torch.no_grad():
        if calibration is None:
            pre = qdqforge.quantize_preprocess(str(cfg), record, model, xs[0])
            for x in xs:
                pre(x)
        calib = qdqforge.quantize_model(str(cfg), modified, record, model, xs[0])
        for x in xs:
            calib(x)
    qdqforge.save_model(modified, record, str(tmp / "out" / "net"))
    assert json.loads((tmp / "out" / "net_verify.json").read_text())["status"] != "failed"
    return read_record(record)


def qat(tmp, device: torch.device) -> dict:
    tmp.mkdir()
    model, batches = build("cnn")
    cfg = write_qat_config(tmp, model, batches[0])
    model, xs = model.to(device), [x.to(device) for x in batches]
    record = str(tmp / "record.txt")
    net = qdqforge.create_quant_retrain_model(str(cfg), model, record, xs[0]).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(0)
    for step in range(4):
        out = net(xs[step % len(xs)])
        target = torch.randint(0, out.shape[-1], out.shape[:1], generator=gen).to(device)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(out, target).backward()
        opt.step()
    qdqforge.save_quant_retrain_model(str(cfg), net, record, str(tmp / "out" / "net"), xs[0])
    assert json.loads((tmp / "out" / "net_verify.json").read_text())["status"] != "failed"
    return read_record(record)


def differences(cpu: dict, cuda: dict) -> dict[str, float]:
    """``layer.field``: largest relative difference of each numeric record field."""
    assert cpu.keys() == cuda.keys()
    result = {}
    for layer, record in cpu.items():
        for field, value in dataclasses.asdict(record).items():
            if isinstance(value, bool) or not isinstance(value, (int, float, tuple)) or value == ():
                continue
            a = torch.as_tensor(value, dtype=torch.float64)
            b = torch.as_tensor(getattr(cuda[layer], field), dtype=torch.float64)
            result[f"{layer}.{field}"] = float(((a - b).abs() / a.abs().clamp_min(1e-30)).max())
    assert result, "no numeric field compared"
    return result


FLOWS = [(ptq, PTQ_REL), (ptq_hfmg_adaround, HFMG_REL), (qat, QAT_REL)]


@pytest.mark.parametrize("flow, rel", FLOWS, ids=[f.__name__ for f, _ in FLOWS])
def test_flow_on_cuda_writes_the_cpu_record(tmp_path, flow, rel):
    on_cpu = flow(tmp_path / "cpu", torch.device("cpu"))
    on_cuda = flow(tmp_path / "cuda", CUDA)
    diffs = differences(on_cpu, on_cuda)
    print(flow.__name__, {k: f"{v:.1e}" for k, v in diffs.items() if v})
    if flow is not qat:  # equal DMQ factors: equal weights, equal ARQ scales (QAT's: trained)
        balanced = ".tensor_balance_factor"
        same = [k for k in diffs if k.endswith(".scale_w")]
        if flow is ptq:
            same = [k.replace(balanced, ".scale_w") for k in diffs if k.endswith(balanced)]
            same = [k for k in same if diffs[k.replace(".scale_w", balanced)] == 0]
        assert same and all(diffs[k] == 0 for k in same), diffs
    assert max(diffs.values()) <= rel, diffs
