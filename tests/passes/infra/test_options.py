"""Pass options: a frozen dataclass per pass; dicts by pass name become it, bad keys are named."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qdqforge.errors import PassError
from qdqforge.graph import io, numerics
from qdqforge.passes import GraphPass, PassResult, all_passes, get_pass
from qdqforge.passes.common.fold_bn import FoldBatchNormPass, FoldBnOptions
from qdqforge.passes.infra.options import NoOptions
from qdqforge.passes.infra.pipeline import rewrite, run_pipeline
from tests.helpers import onnx_graphs as g


def conv_bn_proto():
    proto = g.conv_bn_model()
    proto.graph.node[0].metadata_props.add(key="qdqforge.module", value="conv")
    return proto


def conv_bn_graph():
    return io.load(conv_bn_proto())


def ops(graph) -> list[str]:
    return [n.op for n in graph.gs.nodes]


@pytest.mark.parametrize("name", sorted(all_passes()))
def test_every_pass_has_frozen_default_options(name):
    cls = get_pass(name)
    options = cls().options
    assert isinstance(options, cls.options_type) and dataclasses.is_dataclass(options)
    assert cls.options_type.__dataclass_params__.frozen


def test_dict_by_name_equals_dataclass_given_to_the_constructor():
    by_name = run_pipeline(
        conv_bn_graph(), ("fold_bn",), options={"fold_bn": {"skip_layers": ["conv"]}}
    )
    typed = run_pipeline(
        conv_bn_graph(), (FoldBatchNormPass(FoldBnOptions(skip_layers=("conv",))),)
    )
    folded = run_pipeline(conv_bn_graph(), ("fold_bn",))
    assert (
        by_name.stats
        == typed.stats
        == {
            "fold_bn.bn_folded": 0,
            "fold_bn.skipped_by_config": 1,
            "fold_bn.not_foldable": 0,
        }
    )
    assert ops(by_name.graph) == ops(typed.graph) == ["Conv", "BatchNormalization", "Relu"]
    assert ops(folded.graph) == ["Conv", "Relu"]
    assert FoldBnOptions(skip_layers=["conv"]).skip_layers == ("conv",)  # frozen, hashable


def test_rewrite_options_keep_the_outputs():
    proto = conv_bn_proto()
    kept = rewrite(proto, ("canonicalize", "fold_bn"), fold_bn={"skip_layers": ["conv"]})
    assert [n.op_type for n in kept.graph.node] == [n.op_type for n in proto.graph.node]
    feeds = numerics.feeds_for(
        proto, [np.random.default_rng(0).standard_normal((2, 4, 6, 6), np.float32)]
    )
    np.testing.assert_allclose(numerics.run(kept, feeds)[0], numerics.run(proto, feeds)[0])


def test_unknown_option_key_names_the_pass_and_key():
    with pytest.raises(
        PassError, match=r"pass 'fold_bn': unknown option 'skip'; known options: skip_layers"
    ):
        rewrite(g.conv_bn_model(), ("fold_bn",), fold_bn={"skip": ["conv"]})
    with pytest.raises(
        PassError, match=r"pass 'canonicalize': unknown option 'x'; known options: none"
    ):
        run_pipeline(conv_bn_graph(), ("canonicalize",), options={"canonicalize": {"x": 1}})


def test_unknown_pass_wrong_type_and_double_options_are_refused():
    graph = conv_bn_graph()
    with pytest.raises(PassError, match=r"unknown pass 'fold_bm'"):
        run_pipeline(graph, ("fold_bn",), options={"fold_bm": {}})
    with pytest.raises(
        PassError, match=r"pass 'fold_bn': options must be a dict or FoldBnOptions, got list"
    ):
        run_pipeline(graph, ("fold_bn",), options={"fold_bn": ["conv"]})
    with pytest.raises(
        PassError, match=r"pass 'fold_bn': options given both in the instance and by name"
    ):
        run_pipeline(graph, (FoldBatchNormPass(),), options={"fold_bn": {}})


@dataclasses.dataclass(frozen=True)
class _GainOptions:
    gain: float = 1.0


class _GainPass(GraphPass[_GainOptions], name="gain_probe"):
    """Test pass declared with the type argument and the name keyword."""

    def call(self, graph, ctx):
        return PassResult(graph, False, {"gain": int(self.options.gain)})


class _PlainPass(GraphPass):
    """Test pass declared the plain way."""

    name = "plain_probe"

    def call(self, graph, ctx):
        return PassResult(graph, False, {})


def test_type_argument_and_name_keyword_declare_options_type_and_name():
    assert (_GainPass.name, _GainPass.options_type) == ("gain_probe", _GainOptions)
    assert (_PlainPass.name, _PlainPass.options_type) == ("plain_probe", NoOptions)
    assert _GainPass({"gain": 3}).options == _GainOptions(gain=3)
    assert _GainPass()(conv_bn_graph()).stats == {"gain": 1}
    with pytest.raises(PassError, match=r"pass 'gain_probe': unknown option 'gian'"):
        _GainPass({"gian": 2})
    assert "gain_probe" not in all_passes()  # only @register_pass registers
