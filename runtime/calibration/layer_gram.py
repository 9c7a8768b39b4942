"""A weighted layer's input as rows ``X`` with ``y = X M^T``, and their Gram matrix (AdaRound).

``M`` is the channel-major weight (``kernels.arq.to_channel_major``, ``[C, K]``); a layer with
``g`` groups holds ``g`` row blocks ``X_j`` of ``K = Cin/g * prod(kernel)`` columns, and output
channel ``c`` of group ``j`` is ``y_c = X_j M_c^T`` (channels are contiguous per group in both
layouts). The weight error ``D = M' - M`` then changes the outputs by::

    ||X_j D_j^T||^2 = sum_c D_c (X_j^T X_j) D_c^T = tr(D_j G_j D_j^T),   G_j = X_j^T X_j

so ``G`` (``[g, K, K]``), summed over every calibration row, is all AdaRound needs: memory
``g K^2`` whatever the number of batches. While fewer than ``K`` rows were seen the rows
themselves are kept (cheaper; a Linear head sees one row per image) and ``factor`` returns them.

Rows per layer kind (``N`` batch, spatial dims after the channel):

* dense (Linear, MatMul, Gemm): ``x[..., K]`` -> ``[prod(...), K]`` (Gemm ``transA``: ``x^T``);
* conv: pad (ONNX ``pads``: begins then ends), then every output position's patch
  ``x[c, o*stride + k*dilation]`` over ``(c, k...)``;
* conv_transpose: ``y[o, p] = sum x[c, q] W[c, o, k]`` over ``p = q*s + k*d - pad_begin`` is a
  stride-1 conv of ``u`` = ``x`` with ``s - 1`` zeros between samples, padded by
  ``d(k-1) - pad_begin`` / ``d(k-1) - pad_end + output_padding`` (negative: cropped), with the
  kernel flipped: its patches, flipped along the kernel axes, are the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 1 << 22  # rows of one sample at a time; im2col copies must stay small


@dataclass(frozen=True)
class RowGeometry:
    """How a layer turns its input into rows (module docstring).

    ``kind``: ``dense``, ``conv`` or ``conv_transpose``; the rest are the node's attributes
    (ONNX ``pads``: begins then ends), ``trans_a`` a Gemm's ``transA``.
    """

    kind: str
    groups: int = 1
    kernel: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    output_padding: tuple[int, ...] = ()
    trans_a: bool = False


def layer_rows(x: torch.Tensor, geo: RowGeometry) -> torch.Tensor:
    """Rows of ``x`` as ``[g, n, K]`` (module docstring)."""
    if geo.kind == "dense":
        rows = x.t() if geo.trans_a else x.reshape(-1, x.shape[-1])
        return rows.unsqueeze(0)
    n = len(geo.kernel)
    if geo.kind == "conv_transpose":
        x = _upsample(x, geo.strides)
        lead = [d * (k - 1) for d, k in zip(geo.dilations, geo.kernel)]
        begins = [a - p for a, p in zip(lead, geo.pads[:n])]
        ends = [a - p + o for a, p, o in zip(lead, geo.pads[n:], geo.output_padding)]
        strides = (1,) * n
    else:
        begins, ends, strides = list(geo.pads[:n]), list(geo.pads[n:]), geo.strides
    x = F.pad(x, [p for i in reversed(range(n)) for p in (begins[i], ends[i])])
    patches = _patches(x, geo.kernel, strides, geo.dilations)  # [N, o..., C, k...]
    if geo.kind == "conv_transpose":
        patches = patches.flip(list(range(patches.dim() - n, patches.dim())))
    rows = patches.reshape(-1, geo.groups, x.shape[1] // geo.groups * _prod(geo.kernel))
    return rows.transpose(0, 1)


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _upsample(x: torch.Tensor, strides) -> torch.Tensor:
    if all(s == 1 for s in strides):
        return x
    shape = [*x.shape[:2], *((size - 1) * s + 1 for size, s in zip(x.shape[2:], strides))]
    out = x.new_zeros(shape)
    out[(slice(None), slice(None), *(slice(None, None, s) for s in strides))] = x
    return out


def _patches(x: torch.Tensor, kernel, strides, dilations) -> torch.Tensor:
    n = len(kernel)
    for axis, (k, s, d) in enumerate(zip(kernel, strides, dilations)):
        x = x.unfold(2 + axis, d * (k - 1) + 1, s)  # appends the window axis
    x = x[(Ellipsis, *(slice(None, None, d) for d in dilations))]
    order = [0, *range(2, 2 + n), 1, *range(2 + n, 2 + 2 * n)]
    return x.permute(order)


class GramAccumulator:
    """``G = X^T X`` per group over every row fed to :meth:`update`, in bounded memory.

    Attributes:
        geometry: the layer's :class:`RowGeometry`.
        rows: rows seen so far.
    """

    def __init__(self, geometry: RowGeometry) -> None:
        self.geometry, self.rows = geometry, 0
        self._kept: list[torch.Tensor] = []
        self._gram: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        """Add the rows of one input batch ``x`` (the layer's float input)."""
        x = x.detach().float()
        samples = [x] if self.geometry.kind == "dense" else _chunks(x, self.geometry)
        for part in samples:
            rows = layer_rows(part, self.geometry)
            self.rows += rows.shape[1]
            if self._gram is None:
                self._kept.append(rows.clone())
                if self.rows >= rows.shape[2]:
                    self._gram = self._to_gram(torch.cat(self._kept, 1))
                    self._kept = []
            else:
                self._gram += self._to_gram(rows)

    @staticmethod
    def _to_gram(rows: torch.Tensor) -> torch.Tensor:
        return torch.bmm(rows.transpose(1, 2), rows)

    def factor(self) -> tuple[str, torch.Tensor]:
        """``("gram", G [g, K, K])``, or ``("rows", X [g, n, K])`` while ``n < K``."""
        if self._gram is not None:
            return "gram", self._gram
        return "rows", torch.cat(self._kept, 1)


def _chunks(x: torch.Tensor, geo: RowGeometry):
    growth = _prod(geo.kernel) * (_prod(geo.strides) if geo.kind == "conv_transpose" else 1)
    per_sample = max(x[:1].numel() * growth, 1)
    return x.split(max(CHUNK_ELEMENTS // per_sample, 1))
