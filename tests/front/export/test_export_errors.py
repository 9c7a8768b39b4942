"""export failures: typed errors naming model, exporters and cause; fallback; no partial file."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.errors import ExportError, InputDataError
from qdqforge.front.export import exporters
from qdqforge.front.export.failures import UnsafeTraceError


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return -x


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.fc(x))


def test_data_dependent_control_flow_fails_with_both_exporters(tmp_path):
    target = tmp_path / "model.onnx"
    with pytest.raises(ExportError) as info:
        qdqforge.export(DataDependent(), torch.ones(2, 4), target)
    message = str(info.value)
    assert "DataDependent" in message
    assert "dynamo exporter" in message and "torchscript exporter" in message
    assert "data-dependent" in message
    assert info.value.__cause__ is not None  # the dynamo error, chained
    assert list(tmp_path.iterdir()) == [], "nothing may be written when export fails"


def test_torchscript_refuses_a_trace_that_baked_a_branch():
    with pytest.raises(ExportError) as info:
        qdqforge.export(DataDependent(), torch.ones(2, 4), exporter="torchscript")
    assert isinstance(info.value.__cause__, UnsafeTraceError)
    assert "dynamo" not in str(info.value)


# A value-dependent branch in a helper that lives outside the model's own source files (as in a
# library): the TorchScript warning alone cannot tell it from a harmless shape check.
_HELPER = compile("def flip(x):\n    return x if x.sum() > 0 else -x\n", "/lib/helpers.py", "exec")
_NAMESPACE: dict = {}
exec(_HELPER, _NAMESPACE)


class BranchInHelper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return _NAMESPACE["flip"](self.fc(x))


def test_explicit_torchscript_only_warns_about_a_branch_in_library_code(caplog):
    with caplog.at_level(logging.WARNING, logger="qdqforge"):
        qdqforge.export(BranchInHelper(), torch.ones(2, 4), exporter="torchscript")
    assert any("/lib/helpers.py" in r.getMessage() for r in caplog.records)


def test_auto_refuses_the_fallback_trace_after_a_data_dependent_dynamo_failure():
    with pytest.raises(ExportError, match=r"dynamo exporter.*torchscript exporter") as info:
        qdqforge.export(BranchInHelper(), torch.ones(2, 4))
    assert "/lib/helpers.py" in str(info.value)


def test_auto_falls_back_to_torchscript_with_a_warning(monkeypatch, caplog):
    def broken_dynamo(*args, **kwargs):
        raise RuntimeError("simulated dynamo failure")

    monkeypatch.setattr(exporters, "export_dynamo", broken_dynamo)
    with caplog.at_level(logging.WARNING, logger="qdqforge"):
        proto = qdqforge.export(Tiny(), torch.randn(3, 4))
    assert any(n.name.startswith("/fc/") for n in proto.graph.node)  # TorchScript scope names
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("simulated dynamo failure" in r.getMessage() for r in warnings)
    assert any("TorchScript" in r.getMessage() for r in warnings)


def test_explicit_dynamo_does_not_fall_back(monkeypatch):
    def broken_dynamo(*args, **kwargs):
        raise RuntimeError("simulated dynamo failure")

    monkeypatch.setattr(exporters, "export_dynamo", broken_dynamo)
    with pytest.raises(ExportError, match=r"Tiny.*dynamo exporter.*simulated") as info:
        qdqforge.export(Tiny(), torch.randn(3, 4), exporter="dynamo")
    assert "torchscript" not in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_non_module_is_refused():
    with pytest.raises(ExportError, match=r"torch\.nn\.Module; received function"):
        qdqforge.export(lambda x: x, torch.ones(1))


def test_unknown_exporter_is_refused():
    with pytest.raises(ExportError, match=r"exporter must be one of .*'onnxscript'"):
        qdqforge.export(Tiny(), torch.ones(1, 4), exporter="onnxscript")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([torch.ones(1, 4)], "list"),
        ({"x": torch.ones(1, 4)}, "dict"),
        (None, "None"),
        ((torch.ones(1, 4), 2), "item 1 is int"),
    ],
    ids=["list", "dict", "none", "tuple-with-int"],
)
def test_bad_input_data_is_a_type_error(value, fragment):
    with pytest.raises(InputDataError, match=fragment) as info:
        qdqforge.export(Tiny(), value)
    assert isinstance(info.value, TypeError)
