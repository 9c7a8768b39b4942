"""Every catalogue row ends in exactly its typed error, with the key path/layer/op in the message.

An internal exception (KeyError, IndexError, AttributeError, AssertionError, a RuntimeError from
torch, an OSError) reaching the user fails its row with the traceback's last frame.
"""

from __future__ import annotations

import traceback

import pytest

from qdqforge.errors import QdqforgeError
from tests.reliability.catalogue import all_cases

CASES = all_cases()

# Each input the hardening issue lists, and the row that covers it.
ISSUE_LIST = {
    "malformed JSON": "json:trailing-comma",
    "wrong type of a config key": "ptq:conv/quant_enable='true'",
    "out-of-range config value": "ptq:conv/dmq_balancer_param=0.9",
    "unknown layer name": "ptq:conv9={'quant_enable': True}",
    "duplicate layer name": "json:duplicate-layer",
    "IFMR/HFMG keys mixed": "ptq:fc/activation_quant_params/max_percentile=0.9",
    ".cfg syntax error": "cfg:unbalanced-brace",
    "record truncated mid-line": "record:truncated",
    "record field of the wrong type": "record:str-scale",
    "record missing a layer": "record:missing-layer",
    "record with an extra layer": "record:extra-layer",
    "input_data as list": "input:list",
    "input_data as dict": "input:dict",
    "input_data None": "input:none",
    "input_data of the wrong shape": "input:calib-shape",
    "input_data of the wrong dtype": "input:calib-dtype",
    "input_data on another device": "input:calib-device",
    "data-dependent control flow": "input:data-dependent-control-flow",
    "unsupported ONNX op": "input:unsupported-op",
    "shared weights": "numeric:shared-weights",
    "NaN/inf activations": "numeric:nan",
    "constant activations": "numeric:zero-range",
    "int32 bias overflow": "numeric:int32-bias",
    "fewer than batch_num batches": "numeric:too-few-batches",
    "save_model with another model's record": "record:other-model",
    "unwritable output directory": "files:save-unwritable",
    "save_path that is a directory": "files:save-path-is-directory",
}


def test_catalogue_covers_the_issue_list():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len(CASES) >= 40
    assert {item: row for item, row in ISSUE_LIST.items() if row not in ids} == {}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gives_its_typed_error(world, tmp_path, case):
    try:
        case.call(world.at(tmp_path))
    except QdqforgeError as error:
        assert isinstance(error, case.error), f"{type(error).__name__}: {error}"
        assert case.match in str(error), f"{case.match!r} not in:\n{error}"
    except Exception as error:
        where = traceback.extract_tb(error.__traceback__)[-1]
        pytest.fail(
            f"internal {type(error).__name__} reached the user for {case.input!r}: {error} "
            f"({where.filename}:{where.lineno})"
        )
    else:
        pytest.fail(f"no error for {case.input!r}; expected {case.error.__name__}")
