"""QAT under DistributedDataParallel: 2 CPU processes, gloo, different data on each rank.

Every rank must hold identical quantization state after every step: the ULQ clips (their IFMR
initialization is all-gathered, then DDP averages their gradients) and, after an eval forward,
the search-N sums (all-reduced). conv1's initial clips must equal IFMR over both ranks' batch.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

import qdqforge
from qdqforge.runtime.calibration.ifmr import IfmrObserver
from qdqforge.runtime.kernels.ulq import ulq_clips_from_scale
from tests.helpers.ddp import free_port
from tests.helpers.dmq_flow import build

WORLD = 2
QUANT_KEYS = (".act_quant.", ".weight_quant.", ".search_n.")
CONFIG = {
    "version": 1,
    "batch_num": 1,
    **{
        name: {
            "retrain_enable": True,
            "retrain_data_config": {"algo": "ulq_quantize"},
            "retrain_weight_config": {"algo": algo, "channel_wise": name != "fc"},
        }
        for name, algo in [
            ("conv1", "arq_retrain"),
            ("dw", "ulq_retrain"),
            ("grouped", "arq_retrain"),
            ("up", "arq_retrain"),
            ("fc", "arq_retrain"),
        ]
    },
}


def rank_batch(rank: int, step: int) -> torch.Tensor:
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(100 * step + rank))


def quant_state(module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if any(q in k for q in QUANT_KEYS)}


def _worker(rank: int, port: int, cfg: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model, _ = build("cnn")
        qat = qdqforge.create_quant_retrain_model(
            cfg, model, f"{out}/r{rank}.txt", rank_batch(0, 0)
        )
        ddp = DistributedDataParallel(qat.train())
        opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
        states, initial = [], None
        for step in range(3):
            loss = ddp(rank_batch(rank, step)).square().mean()
            if step == 0:  # clips right after their IFMR initialization
                initial = quant_state(qat)
            opt.zero_grad()
            loss.backward()
            opt.step()
            states.append(quant_state(qat))
        with torch.no_grad():
            ddp.eval()(rank_batch(rank, 9))
        states.append(quant_state(qat))
        torch.save({"initial": initial, "states": states}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ranks_hold_identical_quant_state(tmp_path):
    cfg = tmp_path / "qat.json"
    cfg.write_text(json.dumps(CONFIG))  # SmallCnn's layers; no export in this process
    mp.spawn(_worker, args=(free_port(), str(cfg), str(tmp_path)), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    first, second = (r["states"] for r in results)
    assert len(first) == 4 and first[0].keys() == second[0].keys()
    for step, (a, b) in enumerate(zip(first, second)):
        for key in a:
            assert torch.equal(a[key], b[key]), f"step {step}: {key} differs between ranks"
    assert int(first[-1]["conv1.search_n.batches"]) == 1 and first[-1]["conv1.search_n.error"].any()
    ifmr = IfmrObserver(symmetric=True, expected_batches=1, layer="conv1")
    ifmr.update(torch.cat([rank_batch(r, 0).reshape(-1) for r in range(WORLD)]))
    params = ifmr.compute()
    clip_max, clip_min = ulq_clips_from_scale(params.scale, params.offset)
    initial = results[0]["initial"]
    assert float(initial["conv1.act_quant.clip_max"]) == pytest.approx(clip_max, rel=1e-6)
    assert float(initial["conv1.act_quant.clip_min"]) == pytest.approx(clip_min, rel=1e-6)
