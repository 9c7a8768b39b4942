"""A 3-layer MLP with two planted quantization problems, for the doctor's tests.

``x[16] -> fc1 -> relu -> fc2 -> relu -> fc3 -> y[8]`` (Linear layers: per-tensor ARQ weights
by default).

* fc2's input has one huge channel: ``fc1.bias[5] = 300`` makes ``h1[5] ~ 300`` while the other
  channels are ~1, so fc2's per-tensor int8 activation step is ~1.2 and flattens them; fc2's
  weight column 5 is 0, so that channel carries nothing and fc2's weights are harmless.
* fc3's weights have one outlier column: ``fc3.weight[:, 0] *= 30`` (with ``h2[0] / 30`` so the
  float output is unchanged), which sets fc3's per-tensor weight step 30x too coarse for the
  other columns; fc3's input is well spread.

:func:`saved_fake_quant_outputs` is the onnxruntime side of the doctor's "within 1e-4 dB" claim:
the fake-quant model ``save_model`` writes (float ops, float bias: the doctor's arithmetic), run as
a user opens it (default session) and with optimizations off.
"""

from __future__ import annotations

import onnx
import torch
from torch import nn

import qdqforge
from qdqforge.graph import numerics

# Doctor all-layers SQNR vs the saved fake-quant model in onnxruntime, measured on the DMQ record
# flow and the 16-bit record flow: 1.0e-5 and 2.2e-6 dB, default session and ORT_DISABLE_ALL alike
# (float summation order). 10x margin. The QDQ model (int32 bias) is 5.8e-3 to 7.7e-3 dB off: the
# kind of small simulation fault this bound sees and the former 0.05 dB did not.
DOCTOR_VS_ORT_DB = 1e-4

OUTLIER_CHANNEL = 5


class PlantedMlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(16, 32), nn.Linear(32, 32), nn.Linear(32, 8)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def planted_mlp(activation_outlier: bool = True, weight_outlier: bool = True) -> PlantedMlp:
    torch.manual_seed(0)
    model = PlantedMlp().eval()
    with torch.no_grad():
        if activation_outlier:
            model.fc1.bias[OUTLIER_CHANNEL] = 300.0
            model.fc2.weight[:, OUTLIER_CHANNEL] = 0.0
        if weight_outlier:
            model.fc3.weight[:, 0] *= 30
            model.fc2.weight[0] /= 30
            model.fc2.bias[0] /= 30
    return model


def mlp_input() -> torch.Tensor:
    return torch.randn(64, 16, generator=torch.Generator().manual_seed(1))


def mlp_config(path, model, x, dmq_alpha: float | None = None):
    """``create_quant_config`` for ``model``; with ``dmq_alpha`` every layer gets DMQ."""
    if dmq_alpha is None:
        qdqforge.create_quant_config(str(path), model, x)
        return path
    cfg = path.with_suffix(".cfg")
    cfg.write_text(f"common_config {{ dmq_balancer {{ migration_strength: {dmq_alpha} }} }}\n")
    qdqforge.create_quant_config(str(path), model, x, config_defination=str(cfg))
    return path


def saved_fake_quant_outputs(onnx_file, record, folder, x: torch.Tensor) -> dict:
    """``{session kind: output}`` of the fake-quant model ``save_model`` writes for ``record``."""
    saved = qdqforge.save_model(str(onnx_file), str(record), str(folder / "net"), verify=False)
    proto = onnx.load(str(saved.fake_quant))
    feeds = numerics.feeds_for(proto, [x.numpy()])
    return {
        "default session": numerics.default_session(proto).run(None, feeds)[0],
        "ORT_DISABLE_ALL": numerics.session(proto).run(None, feeds)[0],
    }
