"""ada_sites: a layer's row geometry read from its exported node; layers AdaRound cannot take.

torch exports explicit ``pads``; ``auto_pad`` SAME_* (hand-made or converted graphs) and a
ConvTranspose ``output_shape`` would need the input size at run time: a ConfigError names the
layer and the way out.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qdqforge.errors import ConfigError
from qdqforge.front.export.to_onnx import export
from qdqforge.front.ptq.ada_sites import row_geometry
from qdqforge.graph import io
from qdqforge.graph.layers import layer_site
from tests.helpers.layer_cases import Wrap


def site_of(layer: nn.Module, shape):
    graph = io.load(export(Wrap(layer).eval(), torch.randn(*shape)))
    return layer_site(graph, "layer")


@pytest.mark.parametrize(
    ("layer", "shape", "expected"),
    [
        (nn.Conv2d(4, 6, (3, 5), stride=2, padding=(1, 2), dilation=(2, 1), groups=2),
         (1, 4, 9, 9), ("conv", 2, (3, 5), (2, 2), (1, 2, 1, 2), (2, 1), (0, 0))),
        (nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1),
         (1, 4, 5), ("conv_transpose", 1, (3,), (2,), (1, 1), (1,), (1,))),
    ],
    ids=["conv2d", "conv_transpose1d"],
)  # fmt: skip
def test_geometry_from_the_exported_node(layer, shape, expected):
    geo = row_geometry(site_of(layer, shape))
    got = (geo.kind, geo.groups, geo.kernel, geo.strides, geo.pads, geo.dilations)
    assert (*got, geo.output_padding) == expected


def test_linear_rows_are_dense():
    assert row_geometry(site_of(nn.Linear(5, 3), (2, 4, 5))).kind == "dense"


@pytest.mark.parametrize(
    ("layer", "shape", "attrs", "what"),
    [
        (nn.Conv2d(3, 4, 3), (1, 3, 6, 6), {"auto_pad": "SAME_UPPER"}, "auto_pad SAME_UPPER"),
        (nn.ConvTranspose2d(3, 4, 2, stride=2), (1, 3, 4, 4), {"output_shape": [8, 8]},
         "output_shape"),
    ],
    ids=["conv_same", "conv_transpose_output_shape"],
)  # fmt: skip
def test_input_size_dependent_pads_are_refused(layer, shape, attrs, what):
    site = site_of(layer, shape)
    site.node.attrs.update(attrs)
    with pytest.raises(
        ConfigError, match=rf"layer 'layer': ada_quantize .* has {what}; use arq_quantize"
    ):
        row_geometry(site)
