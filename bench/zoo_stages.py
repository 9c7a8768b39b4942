"""The three stages each zoo model goes through, each timed and reported as ok / typed error.

(a) engine round trip: ``qdqforge.export`` -> ``reimport`` -> ``load_state_dict(strict)``; the
    state_dict keys equal the model's (same names, same order), the outputs equal
    ``model.eval()``'s within float round-off (:data:`ROUNDTRIP_REL`) and one backward gives the
    same parameter gradients (eval mode: no dropout noise).
(b) the PTQ seed flow: ``create_quant_config`` (default config), ``quantize_model``,
    ``batch_num`` = 2 forwards, ``save_model`` (which verifies); output error of the fake-quant and
    deploy models vs FP32 (onnxruntime, ``ORT_DISABLE_ALL``) and the number of quantized layers.
(c) QAT: ``create_quant_retrain_config``, ``create_quant_retrain_model``, two SGD steps
    (cross-entropy of the flattened first output towards random labels; lr 1e-3, clips 1e-4 in
    their own group as the README advises; BN statistics frozen, gradient norm clipped at 1):
    at CI size a training-mode BN sees batch 2 on 1x1 maps, whose variance is near 0, and two
    unclipped steps took random-init GhostNet's BN gammas to 1e8 and its weights to 1e6, where
    the saved models cannot follow the QAT module), ``save_quant_retrain_model`` (which
    verifies); the fake-quant model's output error vs the trained QAT module in eval mode.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

import qdqforge
from bench.zoo_cases import ZooCase
from bench.zoo_numbers import leaves, ort_rel_l2, rel_err
from qdqforge.errors import QdqforgeError
from qdqforge.front.qat.retrain_model import quant_parameters
from qdqforge.front.record.file import read_record

ROUNDTRIP_REL = 1e-4  # max |a - b| / max |b| per output: float round-off
# per gradient (see _gradient_error): float32 summation order differs more in the backward
# (torch's fused attention vs the reimport's MatMul/Softmax): Gemma tiny measured 1.0e-3; a
# semantic difference (a trained padding row, a frozen table) shows as 1e-2..1 or as a
# different set of parameters with gradients
GRADIENT_REL = 5e-3
BATCH_NUM = 2


class StageMismatchError(AssertionError):
    """A stage ran without error but its result is wrong (an output or a key differs)."""


@dataclass
class StageResult:
    """``status`` is ``ok``, the typed error's class name, ``mismatch`` or ``crash:<type>``."""

    status: str
    seconds: float
    detail: str = ""
    numbers: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_stage(stage, case: ZooCase, size: str, workdir: Path) -> StageResult:
    """Run ``stage(case, size, workdir) -> numbers``, timing it and classifying its failure."""
    start = time.perf_counter()
    try:
        numbers = stage(case, size, workdir)
        status, detail = "ok", ""
    except QdqforgeError as e:
        numbers, status, detail = {}, type(e).__name__, str(e)
    except StageMismatchError as e:
        numbers, status, detail = {}, "mismatch", str(e)
    except Exception as e:  # an untyped failure is a defect of ours: reported as a crash
        numbers, status, detail = {}, f"crash:{type(e).__name__}", str(e)
    return StageResult(status, time.perf_counter() - start, detail, numbers)


def build(case: ZooCase, size: str, batches: int = 1) -> tuple[torch.nn.Module, list[tuple]]:
    """The model (seeded, eval) and ``batches`` input tuples (batch 2, seeds 0, 1, ...)."""
    torch.manual_seed(0)
    model = case.build(size).eval()
    return model, [case.inputs(size, 2, seed) for seed in range(batches)]


def roundtrip(case: ZooCase, size: str, workdir: Path) -> dict:
    """Stage (a)."""
    model, (inputs,) = build(case, size)
    original = copy.deepcopy(model)  # before any forward: LeViT caches non-leaf tensors in eval
    net = qdqforge.reimport(qdqforge.export(model, inputs))
    if list(net.state_dict()) != list(model.state_dict()):
        missing = sorted(set(model.state_dict()) ^ set(net.state_dict()))[:4]
        raise StageMismatchError(f"state_dict keys differ (first: {missing})")
    net.load_state_dict(model.state_dict(), strict=True)
    net.eval()
    error = max(rel_err(a, b) for a, b in zip(leaves(net(*inputs)), leaves(model(*inputs))))
    if not error < ROUNDTRIP_REL:
        raise StageMismatchError(f"outputs differ from model.eval() by {error:.3g} (relative)")
    return {"output_rel": error, "grad_rel": _gradient_error(original, net, inputs)}


def _gradient_error(model, net, inputs) -> float:
    grads = []
    for module in (model, net):
        module.zero_grad()
        sum(leaf.float().square().mean() for leaf in leaves(module(*inputs))).backward()
        grads.append({k: p.grad for k, p in module.named_parameters() if p.grad is not None})
    if set(grads[0]) != set(grads[1]):
        raise StageMismatchError(
            f"parameters with gradients differ: {sorted(set(grads[0]) ^ set(grads[1]))[:4]}"
        )
    # relative to max(|g|, 1e-3 of the largest gradient): a gradient that is zero in exact
    # arithmetic (a key bias under softmax) holds only round-off and has no scale of its own
    floor = 1e-3 * max((float(g.abs().max()) for g in grads[0].values()), default=0.0)
    error = max((_grad_error(grads[1][k], g, floor) for k, g in grads[0].items()), default=0.0)
    if not error < GRADIENT_REL:
        raise StageMismatchError(f"gradients differ by {error:.3g} (relative)")
    return error


def _grad_error(got: torch.Tensor, expected: torch.Tensor, floor: float) -> float:
    scale = max(float(expected.abs().max()), floor, 1e-30)
    return float((got.double() - expected.double()).abs().max()) / scale


def ptq(case: ZooCase, size: str, workdir: Path) -> dict:
    """Stage (b)."""
    model, batches = build(case, size, BATCH_NUM)
    cfg, record = workdir / "ptq.json", workdir / "record.txt"
    qdqforge.create_quant_config(str(cfg), model, batches[0], batch_num=BATCH_NUM)
    with torch.no_grad():
        calib = qdqforge.quantize_model(
            str(cfg), str(workdir / "mod.onnx"), str(record), model, batches[0]
        )
        for batch in batches:
            calib(*batch)
    paths = qdqforge.save_model(str(workdir / "mod.onnx"), str(record), str(workdir / "ptq"))
    with torch.no_grad():
        reference = leaves(model(*batches[0]))[0]
    return {
        "layers": len(read_record(record)),
        "fake_quant_rel": ort_rel_l2(paths.fake_quant, batches[0], reference),
        "deploy_rel": ort_rel_l2(paths.deploy, batches[0], reference),
    }


def qat(case: ZooCase, size: str, workdir: Path) -> dict:
    """Stage (c)."""
    model, batches = build(case, size, 2)
    cfg, record = workdir / "qat.json", workdir / "qat_record.txt"
    qdqforge.create_quant_retrain_config(str(cfg), model, batches[0])
    net = qdqforge.create_quant_retrain_model(str(cfg), model, str(record), batches[0])
    net.train()
    qdqforge.freeze_bn_stats(net)  # batch 2 at 1x1 late-layer maps: batch variances near 0
    quant, weights = quant_parameters(net)  # the README's recipe: clips in their own group
    opt = torch.optim.SGD([{"params": weights}, {"params": quant, "lr": 1e-4}], lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for batch in batches:
        out = leaves(net(*batch))[0].float().flatten(1)  # bounded loss: cross-entropy towards
        target = torch.randint(0, out.shape[1], out.shape[:1], generator=generator)  # labels
        opt.zero_grad()
        F.cross_entropy(out, target).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    paths = qdqforge.save_quant_retrain_model(
        str(cfg), net, str(record), str(workdir / "qat"), batches[0]
    )
    with torch.no_grad():
        reference = leaves(net.eval()(*batches[0]))[0]
    return {
        "layers": len(read_record(record)),
        "fake_quant_rel": ort_rel_l2(paths.fake_quant, batches[0], reference),
    }


STAGES = {"a": roundtrip, "b": ptq, "c": qat}
