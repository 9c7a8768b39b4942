"""One PTQ run (config -> quantize_model -> batch_num forwards -> save_model) as a function.

The concurrency test runs two of these at once, on different models and record files, in
threads and in processes, and compares the bytes they write with sequential runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import qdqforge
from tests.reliability.world import WideMlp, net_and_input

OUTPUTS = ("config.json", "record.txt", "modified.onnx", "net_fake_quant_model.onnx")
OUTPUTS += ("net_deploy_model.onnx",)


def model_named(name: str):
    if name == "conv":
        return net_and_input(seed=3)
    torch.manual_seed(4)
    return WideMlp().eval(), torch.randn(4, 256)


def ptq_run(name: str, folder: str, model_and_input=None) -> dict[str, bytes]:
    """The bytes of every file one PTQ run of model ``name`` writes into ``folder``.

    Threads pass ``model_and_input`` built beforehand: building seeds torch's global RNG.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    model, x = model_and_input or model_named(name)
    config, record, onnx_file = out / "config.json", out / "record.txt", out / "modified.onnx"
    qdqforge.create_quant_config(str(config), model, x, batch_num=2)
    calib = qdqforge.quantize_model(str(config), str(onnx_file), str(record), model, x)
    with torch.no_grad():
        calib(x)
        calib(x * 0.5)
    qdqforge.save_model(str(onnx_file), str(record), str(out / "net"))
    return {name: (out / name).read_bytes() for name in OUTPUTS}


if __name__ == "__main__":  # python -m tests.reliability.concurrent_flow NAME FOLDER
    ptq_run(sys.argv[1], sys.argv[2])
