"""A model whose weights pass protobuf's 2 GB limit: export -> rewrite -> reimport -> save.

Two Linear(16384, 16384) layers and a Linear(16384, 2048): 2.3 GB of float32 weights, built
without torch's init (``torch.empty`` then a cheap fill). The exported proto goes through the
default passes, is reimported (its outputs must equal the model's) and saved with external data
(``<name>.data`` beside the graph); onnxruntime on the saved files must give the model's
outputs. Marked ``slow``; skipped unless ``/proc/meminfo`` shows enough available memory.
"""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.graph import io

log = logging.getLogger(__name__)

WIDTH = 16384
WEIGHT_BYTES = 4 * (2 * WIDTH * WIDTH + WIDTH * 2048)
NEEDED_GIB = 16  # measured peak (README, Reliability) plus headroom


class HugeMlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.utils.skip_init(nn.Linear, WIDTH, WIDTH)
        self.fc2 = nn.utils.skip_init(nn.Linear, WIDTH, WIDTH)
        self.head = nn.utils.skip_init(nn.Linear, WIDTH, 2048)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for layer in (self.fc1, self.fc2, self.head):
                layer.weight.uniform_(-1.0 / WIDTH**0.5, 1.0 / WIDTH**0.5, generator=generator)
                layer.bias.uniform_(-0.1, 0.1, generator=generator)

    def forward(self, x):
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def available_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


@pytest.mark.slow
@pytest.mark.skipif(available_gib() < NEEDED_GIB, reason=f"needs {NEEDED_GIB} GiB available")
def test_model_over_2gb_round_trips_with_external_data(tmp_path):
    start = time.perf_counter()
    model, x = HugeMlp().eval(), torch.randn(2, WIDTH, generator=torch.Generator().manual_seed(1))
    assert WEIGHT_BYTES > 2**31
    with torch.no_grad():
        want = model(x).numpy()
    rewritten = qdqforge.rewrite(qdqforge.export(model, x, check=False))
    net = qdqforge.reimport(rewritten)
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), want, rtol=0, atol=1e-5)
    del net
    path = io.save(rewritten, tmp_path / "huge.onnx")
    names = [i.name for i in rewritten.graph.input]
    del rewritten
    assert (tmp_path / "huge.onnx.data").stat().st_size >= WEIGHT_BYTES
    assert path.stat().st_size < 2**20
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {names[0]: x.numpy()})[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    log.warning("2.3 GB model: %.0f s, peak RSS %.1f GiB", time.perf_counter() - start, peak)
