"""fake_quantize: values, and gradients equal to autograd of the composed STE formula."""

from __future__ import annotations

import pytest
import torch

from qdqforge.runtime.kernels.fake_quant_ref import (
    dequantize_linear,
    fake_quantize,
    quantize_linear,
)


def composed(x, scale, zp, qmin, qmax):
    """The textbook STE form (round with a detached residual), for reference gradients."""
    v = x / scale
    q = torch.clamp(v + (torch.round(v) - v).detach() + zp, qmin, qmax)
    return (q - zp) * scale


@pytest.mark.parametrize(
    ("zp", "qmin", "qmax"),
    [(0, -128, 127), (3, -128, 127), (128, 0, 255)],
    ids=["sym", "int8_zp", "uint8"],
)
def test_fake_quantize_matches_composed_values_and_grads(zp, qmin, qmax):
    torch.manual_seed(0)
    x = (torch.randn(4, 16) * 4).requires_grad_()
    scale = torch.tensor(0.05, requires_grad=True)
    y = fake_quantize(x, scale, zp, qmin, qmax)
    x2, s2 = x.detach().clone().requires_grad_(), scale.detach().clone().requires_grad_()
    y2 = composed(x2, s2, zp, qmin, qmax)
    torch.testing.assert_close(y, y2, rtol=0, atol=0)
    g = torch.randn_like(y)
    y.backward(g)
    y2.backward(g)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(scale.grad, s2.grad, rtol=1e-5, atol=1e-5)


def test_per_axis_scale_gradient_shape():
    x = torch.randn(2, 3, 4)
    scale = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
    fake_quantize(x, scale, torch.zeros(3, dtype=torch.int8), -128, 127, axis=1).sum().backward()
    assert scale.grad.shape == (3,)
    ref = scale.detach().clone().requires_grad_()
    composed(x, ref.reshape(3, 1), 0, -128, 127).sum().backward()
    torch.testing.assert_close(scale.grad, ref.grad, rtol=1e-5, atol=1e-5)


def test_round_half_to_even():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5])
    out = fake_quantize(x, torch.tensor(1.0), 0, -128, 127)
    assert out.tolist() == [0.0, 2.0, 2.0, -0.0, -2.0]


def test_quantize_dequantize_linear_round_trip():
    x = torch.tensor([-1.0, 0.0, 0.26, 10.0])
    q = quantize_linear(x, torch.tensor(0.1), 5, -128, 127, None, torch.int8)
    assert q.dtype == torch.int8 and q.tolist() == [-5, 5, 8, 105]
    assert dequantize_linear(q, torch.tensor(0.1), 5, None).tolist() == pytest.approx(
        [-1.0, 0.0, 0.3, 10.0]
    )


def test_half_precision():
    x = torch.randn(8).half()
    y = fake_quantize(x, torch.tensor(0.05).half(), 0, -128, 127)
    assert y.dtype == torch.float16
