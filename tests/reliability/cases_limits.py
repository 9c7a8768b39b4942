"""Catalogue rows: inputs that used to end in an internal traceback or a hang.

An IFMR search too costly to run (its candidate count, ``.cfg`` and tampered ONNX alike), a
``QDQFORGE_DEBUG_DIR`` that cannot be a folder, tampered ``qdqforge.parameters`` metadata, a
doctor input of strings, ``input_names=[""]``. Each is a typed error before the work starts.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper

import qdqforge
from qdqforge.cli.doctor import load_inputs
from qdqforge.errors import ConfigError, ConversionError, GraphError, InputDataError, OutputError
from qdqforge.graph import meta
from tests.reliability.catalogue import Case
from tests.reliability.world import unwritable_dir

OVERRIDE = 'override_layer_configs {{ layer_name: "conv" calibration_config {{ {} }} }}\n'


def _cfg(body: str):
    def call(w):
        cfg = w.write("def.cfg", OVERRIDE.format(body))
        return qdqforge.create_quant_config(
            str(w.tmp / "c.json"), w.model, w.x, config_defination=str(cfg)
        )

    return call


def _with_debug_dir(where):
    def call(w):
        old = os.environ.get("QDQFORGE_DEBUG_DIR")
        os.environ["QDQFORGE_DEBUG_DIR"] = str(where(w))
        try:
            return w.quantize(w.config)
        finally:
            if old is None:
                os.environ.pop("QDQFORGE_DEBUG_DIR")
            else:
                os.environ["QDQFORGE_DEBUG_DIR"] = old

    return call


def _tampered(edit, name="tampered.onnx"):
    def call(w):
        model = onnx.load(w.onnx)
        edit(model)
        path = w.tmp / name
        onnx.save(model, path)
        return qdqforge.reimport(str(path))

    return call


def _metadata(text: str):
    def edit(model):
        for prop in model.metadata_props:
            if prop.key == meta.PARAMETERS:
                prop.value = text

    return edit


def _observer_graph(w):
    """An ONNX holding an IFMR ActObserver (qdqforge's calibration op) with a 1e-9 step."""
    attrs = dict(layer="conv", algo="ifmr", num_bits=8, symmetric=0, batch_num=1)
    attrs |= dict(max_percentile=0.999999, min_percentile=0.999999)
    node = helper.make_node(
        "ActObserver",
        ["x"],
        ["y"],
        name="observer",
        domain="qdqforge",
        search_range=[0.7, 1.3],
        search_step=1e-9,
        **attrs,
    )
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [node], "g", [value("x", TensorProto.FLOAT, [2, 3])], [value("y", TensorProto.FLOAT, None)]
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("qdqforge", 1)]
    path = w.tmp / "observer.onnx"
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)
    return qdqforge.reimport(str(path))


def _strings(w):
    path = w.tmp / "x.npz"
    np.savez(path, np.array(["a", "b"]))
    return load_inputs(str(path))


def _quantize_named(**names):
    """``quantize_model`` of the world's model with ``input_names``/``output_names`` given."""
    return lambda w: qdqforge.quantize_model(
        str(w.config), str(w.tmp / "m.onnx"), str(w.tmp / "r.txt"), w.model, w.x, **names
    )


def _limit(name, call, error, match, what) -> Case:
    return Case(f"limits:{name}", what, call, error, match)


CASES = [
    _limit(
        "cfg-search-step",
        _cfg("ifmr_quantize { search_range_start: 0.7 search_range_end: 1.3 search_step: 1e-7 }"),
        ConfigError,
        "override_layer_configs[conv].calibration_config.ifmr_quantize.search_step: got 1e-07",
        ".cfg IFMR search_step 1e-7 (6 million candidates; hung before)",
    ),
    _limit(
        "onnx-observer-search-step",
        _observer_graph,
        ConversionError,
        "1e-09: 6e+08 IFMR candidates",
        "a modified ONNX whose ActObserver asks for a 1e-9 search step",
    ),
    _limit(
        "debug-dir-is-a-file",
        _with_debug_dir(lambda w: w.write("dump", "a file")),
        OutputError,
        "QDQFORGE_DEBUG_DIR=",
        "QDQFORGE_DEBUG_DIR naming a file",
    ),
    _limit(
        "debug-dir-uncreatable",
        _with_debug_dir(lambda w: unwritable_dir(w.tmp) / "dumps"),
        OutputError,
        "cannot create the debug dump folder",
        "QDQFORGE_DEBUG_DIR in a folder that cannot be written",
    ),
    _limit(
        "parameters-metadata-not-json",
        _tampered(_metadata("[conv.weight")),
        GraphError,
        "model metadata 'qdqforge.parameters' is not JSON",
        "tampered qdqforge.parameters metadata (not JSON)",
    ),
    _limit(
        "parameters-metadata-not-a-list",
        _tampered(_metadata('{"conv.weight": 1}')),
        GraphError,
        "must be a JSON list of initializer names",
        "tampered qdqforge.parameters metadata (a JSON object)",
    ),
    _limit(
        "doctor-string-inputs",
        _strings,
        InputDataError,
        "array 'arr_0' is <U1",
        "doctor --inputs holding an array of strings",
    ),
    _limit(
        "input-names-empty",
        _quantize_named(input_names=[""]),
        ConfigError,
        "quantize_model: input_names[0]: got ''",
        "input_names=['']",
    ),
    _limit(
        "output-names-clash",
        _quantize_named(input_names=["x"], output_names=["x"]),
        ConfigError,
        "output_names[0]: 'x' is already input_names[0]",
        "the same name for an input and an output",
    ),
]
