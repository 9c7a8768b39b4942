"""Fuzzing: random and mutated JSON / .cfg / record text only ever raise ConfigError/RecordError.

Profiles (registered in ``tests/conftest.py``): ``ci`` (default, 200 examples per test) and
``long`` (5,000), chosen with ``pytest --hypothesis-profile=long`` on this file
or ``QDQFORGE_FUZZ=long``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qdqforge.errors import ConfigError, RecordError
from qdqforge.front.config import (
    QuantLayer,
    build_quant_config,
    build_retrain_config,
    parse_quant_config,
    parse_retrain_config,
)
from qdqforge.front.proto.text import parse_text
from qdqforge.front.record.file import LayerRecord, format_record, parse_record

FUZZ = settings()  # the loaded profile (ci or long) at import, after --hypothesis-profile

GOLDEN = Path(__file__).parent / "golden"
PTQ_JSON = (GOLDEN / "amct_ptq_config.json").read_text()
QAT_JSON = (GOLDEN / "amct_qat_config.json").read_text()
PTQ_CFG = (GOLDEN / "amct_ptq.cfg").read_text()
QAT_CFG = (GOLDEN / "amct_qat.cfg").read_text()
RECORD = (GOLDEN / "amct_record.txt").read_text()
LAYERS = [
    QuantLayer("conv1", "Conv2d"),
    QuantLayer("layer1.0.conv1", "Conv2d"),
    QuantLayer("layer1.0.conv2", "Conv2d"),
    QuantLayer("pool", "AvgPool2d"),
    QuantLayer("fc", "Linear"),
    QuantLayer("attn.matmul_0", "MatMul"),
    QuantLayer("tied", "Linear", sharing="called 2 times"),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = [
    "version", "batch_num", "activation_offset", "do_fusion", "skip_fusion_layers", "conv1", "fc",
    "quant_enable", "dmq_balancer_param", "activation_quant_params", "weight_quant_params",
    "num_bits", "act_algo", "max_percentile", "min_percentile", "search_range", "search_step",
    "num_of_bins", "asymmetric", "wts_algo", "channel_wise", "retrain_enable", "algo",
    "retrain_data_config", "retrain_weight_config", "clip_max", "clip_min", "fixed_min", "dst_type",
]  # fmt: skip


def _mutate_tree(data, node, depth=0):
    """Replace, delete or add one key somewhere in a JSON tree (in place)."""
    if not isinstance(node, dict) or not node:
        return
    key = data.draw(st.sampled_from(sorted(node)))
    action = data.draw(st.sampled_from(["replace", "delete", "add", "descend"]))
    if action == "descend" and isinstance(node[key], dict) and depth < 3:
        _mutate_tree(data, node[key], depth + 1)
    elif action == "replace":
        node[key] = data.draw(json_values)
    elif action == "delete":
        del node[key]
    else:
        node[data.draw(st.sampled_from(KEYS) | st.text(max_size=6))] = data.draw(json_values)


def _mutate_text(data, text: str) -> str:
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 3))
        insert = data.draw(st.text(alphabet='{}[]":,.-0123456789 \nabcxyz_#\\', max_size=4))
        text = text[:pos] + insert + text[pos + cut :]
    return text


def _json_loaders(text: str) -> None:
    for loader in (parse_quant_config, parse_retrain_config):
        for layers in (None, LAYERS):
            with contextlib.suppress(ConfigError):
                loader(text, "fuzz.json", layers)


@FUZZ
@given(json_values)
def test_random_json_raises_only_config_error(tree):
    _json_loaders(json.dumps(tree))


@FUZZ
@given(st.data(), st.sampled_from([PTQ_JSON, QAT_JSON]))
def test_mutated_json_tree_raises_only_config_error(data, golden):
    tree = json.loads(golden)
    for _ in range(data.draw(st.integers(1, 3))):
        _mutate_tree(data, tree)
    _json_loaders(json.dumps(tree))


@FUZZ
@given(st.data(), st.sampled_from([PTQ_JSON, QAT_JSON]))
def test_mutated_json_text_raises_only_config_error(data, golden):
    _json_loaders(_mutate_text(data, golden))


CFG_WORDS = [
    "batch_num", "activation_offset", "skip_layers", "skip_layer_types", "common_config",
    "override_layer_types", "override_layer_configs", "layer_type", "layer_name",
    "calibration_config", "arq_quantize", "ifmr_quantize", "hfmg_quantize", "dmq_balancer",
    "ada_quantize", "channel_wise", "quant_bits", "num_of_bins", "search_step", "asymmetric",
    "migration_strength", "dst_type", "INT8", "INT16", "retrain_data_quant_config",
    "retrain_weight_quant_config", "ulq_quantize", "arq_retrain", "clip_max_min", "clip_max",
    "clip_min", "prune_config", "do_fusion", "skip_fusion_layers", "{", "}", ":", '"fc"',
    '"Linear"', '"conv1"', '"MatMul"', "true", "false", "0", "-1", "0.5", "2", "4096", "1e40",
]  # fmt: skip


def _cfg_loaders(text: str) -> None:
    for message, build in (
        ("AMCTConfig", build_quant_config),
        ("AMCTRetrainConfig", build_retrain_config),
    ):
        with contextlib.suppress(ConfigError):
            build(parse_text(text, message, ConfigError, "fuzz.cfg"), LAYERS, "fuzz.cfg")


@FUZZ
@given(st.lists(st.sampled_from(CFG_WORDS), max_size=30))
def test_random_cfg_tokens_raise_only_config_error(words):
    _cfg_loaders(" ".join(words))


@FUZZ
@given(st.data(), st.sampled_from([PTQ_CFG, QAT_CFG]))
def test_mutated_cfg_raises_only_config_error(data, golden):
    _cfg_loaders(_mutate_text(data, golden))


RECORD_WORDS = [
    "record", "key", "value", "scale_d", "offset_d", "scale_w", "offset_w", "shift_bit",
    "tensor_balance_factor", "skip_fusion", "dst_type", "prune_record", "producer", "name",
    "kv_cache_value", "{", "}", ":", '"a"', '"b"', '"INT8"', "0", "-128", "0.5", "1e50", "true",
    "4294967296", "-1",
]  # fmt: skip


def _parse_record(text: str) -> None:
    with contextlib.suppress(RecordError):
        parse_record(text, "fuzz.txt")


@FUZZ
@given(st.lists(st.sampled_from(RECORD_WORDS), max_size=30))
def test_random_record_tokens_raise_only_record_error(words):
    _parse_record(" ".join(words))


@FUZZ
@given(st.data())
def test_mutated_record_raises_only_record_error(data):
    _parse_record(_mutate_text(data, RECORD))


@FUZZ
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_record_or_config_error(text):
    _parse_record(text)
    _cfg_loaders(text)
    _json_loaders(text)


floats32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
int32 = st.integers(-(2**31), 2**31 - 1)
records = st.builds(
    LayerRecord,
    scale_d=st.none() | floats32,
    offset_d=st.none() | int32,
    scale_w=st.lists(floats32, max_size=4).map(tuple),
    offset_w=st.lists(int32, max_size=4).map(tuple),
    shift_bit=st.lists(st.integers(0, 2**32 - 1), max_size=3).map(tuple),
    tensor_balance_factor=st.lists(floats32, max_size=3).map(tuple),
    skip_fusion=st.none() | st.booleans(),
    dst_type=st.none() | st.sampled_from(["INT8", "INT4"]),
)


@FUZZ
@given(st.dictionaries(st.text(min_size=1, max_size=10), records, max_size=4))
def test_record_round_trip_property(layers):
    text = format_record(layers)
    parsed = parse_record(text)
    assert parsed == {k: layers[k] for k in sorted(layers)}
    assert format_record(parsed) == text
    assert all(np.float32(v.scale_d) == v.scale_d for v in parsed.values() if v.scale_d is not None)
