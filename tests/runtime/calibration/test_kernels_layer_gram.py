"""layer_gram: tr(D G D^T) / n equals the layer's own output change ||y(W + D) - y(W)||^2 / n.

The reference runs torch's conv / conv_transpose / matmul on the same batches (ONNX pads applied
with F.pad first, ConvTranspose pads cropped from its output), so the rows are checked against
the op itself, in both of the accumulator's modes (rows kept while n < K, Gram after).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from qdqforge.runtime.calibration.adaround import channel_errors
from qdqforge.runtime.calibration.layer_gram import GramAccumulator, RowGeometry
from qdqforge.runtime.kernels.arq import to_channel_major

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def conv_ref(geo: RowGeometry):
    n = len(geo.kernel)
    torch_pads = [p for i in reversed(range(n)) for p in (geo.pads[i], geo.pads[n + i])]

    def run(x, w):
        x = F.pad(x, torch_pads)
        return CONV[n](x, w, None, geo.strides, 0, geo.dilations, geo.groups)

    return run


def conv_t_ref(geo: RowGeometry):
    n = len(geo.kernel)

    def run(x, w):
        y = CONV_T[n](x, w, None, geo.strides, 0, geo.output_padding, geo.groups, geo.dilations)
        index = [slice(None), slice(None)]
        index += [slice(b, y.shape[2 + i] - geo.pads[n + i]) for i, b in enumerate(geo.pads[:n])]
        return y[tuple(index)]

    return run


def dense_ref(geo: RowGeometry):
    return lambda x, w: (x.t() if geo.trans_a else x) @ w.t()


def conv(n, groups=1, k=3, s=1, pads=None, d=1):
    pads = pads or (1,) * 2 * n
    return RowGeometry("conv", groups, (k,) * n, (s,) * n, tuple(pads), (d,) * n)


def conv_t(n, groups=1, k=3, s=2, pads=None, d=1, op=0):
    pads = pads or (1,) * 2 * n
    return RowGeometry(
        "conv_transpose", groups, (k,) * n, (s,) * n, tuple(pads), (d,) * n, (op,) * n
    )


# id: geometry, input shape, weight shape
CASES = {
    "conv1d_stride2": (conv(1, s=2), (2, 4, 11), (6, 4, 3)),
    "conv2d_asym_pads": (conv(2, pads=(0, 1, 2, 1)), (2, 4, 7, 6), (5, 4, 3, 3)),
    "conv2d_dilated_strided": (conv(2, s=2, d=2, pads=(2, 2, 2, 2)), (2, 3, 9, 9), (4, 3, 3, 3)),
    "conv2d_grouped": (conv(2, groups=2), (2, 4, 6, 6), (6, 2, 3, 3)),
    "conv2d_depthwise": (conv(2, groups=4, k=5, pads=(2, 2, 2, 2)), (2, 4, 6, 6), (4, 1, 5, 5)),
    "conv3d": (conv(3, k=2, pads=(0, 1, 0, 1, 0, 1)), (1, 2, 4, 4, 4), (3, 2, 2, 2, 2)),
    "conv_t1d": (conv_t(1, op=1), (2, 4, 5), (4, 3, 3)),
    "conv_t2d_grouped": (conv_t(2, groups=2, op=1), (2, 4, 4, 4), (4, 3, 3, 3)),
    "conv_t2d_k2s2": (conv_t(2, k=2, pads=(0, 0, 0, 0)), (2, 3, 3, 3), (3, 2, 2, 2)),
    "conv_t2d_crop": (conv_t(2, k=2, pads=(2, 1, 1, 2)), (1, 2, 5, 5), (2, 3, 2, 2)),
    "conv_t2d_dilated": (conv_t(2, d=2, pads=(1, 2, 3, 0)), (1, 2, 4, 4), (2, 2, 3, 3)),
    "conv_t3d": (conv_t(3, k=2, pads=(0,) * 6), (1, 2, 2, 3, 2), (2, 2, 2, 2, 2)),
    "dense_2d": (RowGeometry("dense"), (40, 6), (5, 6)),
    "dense_3d": (RowGeometry("dense"), (3, 7, 6), (5, 6)),
    "dense_trans_a": (RowGeometry("dense", trans_a=True), (6, 9), (5, 6)),
    "dense_few_rows": (RowGeometry("dense"), (2, 16), (5, 16)),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_gram_reproduces_the_layer_output_error(case):
    geo, x_shape, w_shape = CASES[case]
    ref = {"conv": conv_ref, "conv_transpose": conv_t_ref, "dense": dense_ref}[geo.kind](geo)
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(w_shape, generator=gen, dtype=torch.float64).float()
    d = torch.randn(w_shape, generator=gen) * 0.05
    batches = [torch.randn(x_shape, generator=gen) for _ in range(2)]
    acc = GramAccumulator(geo)
    for x in batches:
        acc.update(x)
    axis, groups = (1, geo.groups) if geo.kind == "conv_transpose" else (0, 1)
    m, dm = to_channel_major(w, axis, groups), to_channel_major(d, axis, groups)
    got = channel_errors(dm, acc.factor(), acc.rows).sum()
    want = sum((ref(x, w + d) - ref(x, w)).double().square().sum() for x in batches)
    rows = sum(ref(x, w).numel() // m.shape[0] for x in batches)

    assert acc.rows == rows
    assert acc.factor()[0] == ("rows" if rows < m.shape[1] else "gram")
    torch.testing.assert_close(got.double(), want / rows, rtol=1e-4, atol=0)


def test_gram_memory_does_not_grow_with_batches():
    geo = conv(2)
    acc = GramAccumulator(geo)
    for _ in range(5):
        acc.update(torch.randn(2, 4, 8, 8))
    kind, gram = acc.factor()
    assert kind == "gram" and gram.shape == (1, 36, 36) and acc.rows == 5 * 2 * 64
