"""The calibration module's int8 activations, compared with a fake-quant model's."""

from __future__ import annotations

import numpy as np
import torch

from qdqforge.graph.quant_compare import run_with_tensors
from qdqforge.runtime.converters.qdqforge_observers import ActObserverOp
from tests.helpers.qat_flow import error_in_lsb


def calibration_grids(calib, x) -> dict[str, np.ndarray]:
    """The int8 activations the calibration module's observers produce on ``x``."""
    grids, hooks = {}, []
    for op in calib.modules():
        if isinstance(op, ActObserverOp):
            scale, offset = np.float32(op.params.scale), op.params.offset
            hooks.append(
                op.register_forward_hook(
                    lambda m, a, out, s=scale, o=offset: grids.__setitem__(
                        m.layer, np.rint(out.numpy() / s) + o
                    )
                )
            )
    with torch.no_grad():
        y = calib(x).numpy()
    for hook in hooks:
        hook.remove()
    return grids, y


def assert_grids_match(calib, proto, x, feeds, onnx_out) -> None:
    """The calibration module's int8 activations on ``x`` vs the fake-quant ONNX's: at most one
    step apart, on at most 1e-3 of the integers; with no integer apart, the outputs within
    1e-4 LSB (see tests/integration/test_ptq_save.py)."""
    grids, calib_out = calibration_grids(calib, x)
    onnx_grids = run_with_tensors(proto, [f"{k}.quant.out" for k in grids], feeds)
    flips = [np.abs(grids[k] - onnx_grids[f"{k}.quant.out"]) for k in grids]
    assert max(f.max() for f in flips) <= 1
    assert sum(int((f > 0).sum()) for f in flips) <= 1e-3 * sum(f.size for f in flips)
    if not any(f.any() for f in flips):
        assert error_in_lsb(onnx_out, calib_out) <= 1e-4
