"""Planted faults in saved models: scaled initializers, edited copies."""

from __future__ import annotations

import shutil

import onnx
from onnx import numpy_helper

from qdqforge.front.save.write_models import SavedModels


def tamper(path, edit) -> None:
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    edit(inits)
    onnx.save(model, str(path))


def scaled(name: str, factor: float):
    def edit(inits):
        value = numpy_helper.to_array(inits[name])
        inits[name].CopyFrom(numpy_helper.from_array((value * factor).astype(value.dtype), name))

    return edit


def broken_copy(tmp, paths, tensor: str, factor: float, where: str = "deploy") -> SavedModels:
    out = tmp / f"broken_{tensor}"
    out.mkdir(exist_ok=True)
    copies = {k: out / p.name for k, p in paths._asdict().items()}
    for key, path in paths._asdict().items():
        shutil.copy(path, copies[key])
    proto = onnx.load(str(copies[where]))
    init = next(i for i in proto.graph.initializer if i.name == tensor)
    init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) * factor, tensor))
    onnx.save(proto, str(copies[where]))
    return SavedModels(**copies)
