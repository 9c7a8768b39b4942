"""The .proto -> FileDescriptorProto converter and the runtime message classes built from it."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2

from qdqforge.errors import ConfigError
from qdqforge.front.proto import ProtoSchemaError, compile_schemas, message_class
from qdqforge.front.proto.compiler import compile_proto
from qdqforge.front.proto.resolve import resolve_types
from qdqforge.front.proto.text import parse_text, proto_float

FDP = descriptor_pb2.FieldDescriptorProto


def _fields(name: str) -> set[str]:
    return set(message_class(name).DESCRIPTOR.fields_by_name)


@pytest.mark.parametrize(
    ("message", "names"),
    [
        ("AMCTConfig", {"batch_num", "activation_offset", "skip_layers", "skip_layer_types",
                        "common_config", "override_layer_types", "override_layer_configs",
                        "do_fusion", "skip_fusion_layers", "fakequant_precision_mode",
                        "weight_reduce_range"}),  # the last one is our extension
        ("CalibrationConfig", {"arq_quantize", "ada_quantize", "ifmr_quantize", "hfmg_quantize",
                               "dmq_balancer"}),
        ("FMRQuantize", {"search_range_start", "search_range_end", "search_step",
                         "max_percentile", "min_percentile", "asymmetric", "dst_type"}),
        ("AMCTRetrainConfig", {"batch_num", "retrain_data_quant_config",
                               "retrain_weight_quant_config", "skip_layers", "skip_layer_types",
                               "override_layer_configs", "override_layer_types",
                               "quant_skip_layers", "quant_skip_types", "prune_config",
                               "regular_prune_skip_layers", "regular_prune_skip_types",
                               "fakequant_precision_mode", "weight_reduce_range"}),
        ("ActULQquantize", {"clip_max_min", "fixed_min", "dst_type"}),
        ("SingleLayerRecord", {"scale_d", "offset_d", "scale_w", "offset_w", "shift_bit",
                               "tensor_balance_factor", "skip_fusion", "dst_type", "act_type",
                               "wts_type", "fakequant_precision_mode", "scale_h", "offset_h",
                               "scale_r", "offset_r"}),
        ("ScaleOffsetRecord", {"record", "prune_record"}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)  # fmt: skip
def test_schemas_use_amct_names(message, names):
    assert message_class(message).DESCRIPTOR.full_name == f"AMCTPytorchProto.{message}"
    assert _fields(message) == names


def test_oneofs_defaults_and_enums():
    calib = message_class("CalibrationConfig").DESCRIPTOR
    assert set(calib.oneofs_by_name) == {"wts_quant_algo", "acts_quant_algo", "tensor_balancer"}
    ifmr = message_class("FMRQuantize")()
    assert proto_float(ifmr.search_step) == 0.01 and not ifmr.HasField("search_step")
    assert message_class("HFMGQuantize")().num_of_bins == 4096
    assert message_class("SingleLayerRecord")().dst_type == "INT8"
    assert message_class("ActULQquantize")().dst_type == 1  # DataType.INT8


def test_two_members_of_one_oneof_are_rejected_with_the_line():
    text = "ifmr_quantize { search_step: 0.02 }\nhfmg_quantize { num_of_bins: 1024 }"
    with pytest.raises(ConfigError, match=r"a.cfg:2:.*hfmg_quantize.*ifmr_quantize"):
        parse_text(text, "CalibrationConfig", ConfigError, "a.cfg")


def test_compile_nested_and_relative_types():
    source = """
        syntax = "proto2";
        package p.q;
        // comment
        message Outer {
            enum Kind { A = 0; B = -1; }
            message Inner { optional Kind kind = 1 [default = B]; }
            optional Inner inner = 1;
            repeated .p.q.Other others = 2 [packed = false];
            oneof choice { string s = 3; int32 i = 4; }
        }
        /* block
           comment */
        message Other { optional string name = 1 [default = 'x\\'y']; }
    """
    proto = compile_proto(source, "t.proto")
    resolve_types([proto])
    outer = proto.message_type[0]
    assert outer.field[0].type == FDP.TYPE_MESSAGE
    assert outer.field[0].type_name == ".p.q.Outer.Inner"
    assert outer.nested_type[0].field[0].type_name == ".p.q.Outer.Kind"
    assert outer.nested_type[0].field[0].default_value == "B"
    assert outer.field[1].type_name == ".p.q.Other"
    assert [f.oneof_index for f in outer.field[2:]] == [0, 0]
    assert proto.message_type[1].field[0].default_value == "x'y"


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ('syntax = "proto3";', "only proto2"),
        ("message A { optional B b = 1; }", "unknown type 'B'"),
        ("message A { optional int32 a = 1 }", r"t.proto:1: expected ;"),
        ("service S {}", "unsupported statement"),
        ("message A {\n  map<string, int32> m = 1;\n}", r"t.proto:2: unsupported member"),
        ("message A { optional int32 a = 1; ", "expected"),
        ("message A { optional int32 a = 1; } $", r"t.proto:1: unexpected character"),
    ],
    ids=["proto3", "unknown-type", "missing-semicolon", "service", "map", "eof", "bad-char"],
)
def test_schema_errors_name_the_line(source, match):
    with pytest.raises(ProtoSchemaError, match=match):
        resolve_types([compile_proto(source, "t.proto")])


def test_shipped_schemas_compile_without_protoc():
    names = [f.name for f in compile_schemas()]
    assert "calibration_config_pytorch.proto" in names
    assert "scale_offset_record_pytorch.proto" in names


def test_parse_text_reports_missing_required_fields():
    with pytest.raises(ConfigError, match=r"override_layer_types\[0\].layer_type"):
        parse_text("override_layer_types { calibration_config {} }", "AMCTConfig", ConfigError)


def test_proto_float_gives_the_shortest_float32_text():
    assert proto_float(0.009999999776482582) == 0.01
    assert proto_float(0.999999) == 0.999999
