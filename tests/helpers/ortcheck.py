"""Build one-op ONNX models in code and compare onnxruntime (no graph optimizations) with reimport.

Inputs are given in order as (name, array, is_initializer); an empty name is a skipped optional
input. Runtime inputs become graph inputs with a symbolic batch dim when ``dynamic`` is set.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper

from qdqforge.runtime import reimport

RNG = np.random.default_rng(0)


def rand(*shape: int, dtype=np.float32, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    """Uniform random array (ints when ``dtype`` is integer)."""
    if np.issubdtype(dtype, np.integer):
        return RNG.integers(int(low), int(high), size=shape).astype(dtype)
    return RNG.uniform(low, high, size=shape).astype(dtype)


def op_model(
    op: str,
    inputs: list[tuple[str, np.ndarray | None, bool]],
    attrs: dict | None = None,
    *,
    opset: int = 17,
    n_outputs: int = 1,
    dynamic: bool = False,
) -> onnx.ModelProto:
    """A model with one ``op`` node reading ``inputs`` and writing ``y0``, ``y1``, ..."""
    graph_inputs, inits, names = [], [], []
    for name, array, is_init in inputs:
        names.append(name)
        if not name:
            continue
        if is_init:
            inits.append(numpy_helper.from_array(array, name))
            continue
        shape = list(array.shape)
        if dynamic and shape:
            shape[0] = "N"
        dtype = helper.np_dtype_to_tensor_dtype(array.dtype)
        graph_inputs.append(helper.make_tensor_value_info(name, dtype, shape))
    outputs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op, names, outputs, name=f"{op.lower()}_node", **(attrs or {}))
    graph_outputs = [onnx.ValueInfoProto(name=o) for o in outputs]
    graph = helper.make_graph([node], "g", graph_inputs, graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9 if opset < 21 else 10
    return model


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, feeds)


def run_torch(module: torch.nn.Module, model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    names = [i.name for i in model.graph.input]
    with torch.no_grad():
        out = module(*[torch.from_numpy(feeds[n].copy()) for n in names])
    out = out if isinstance(out, tuple) else (out,)
    return [o.detach().numpy() for o in out]


def feeds_of(model: onnx.ModelProto, inputs) -> dict[str, np.ndarray]:
    runtime = {i.name for i in model.graph.input}
    return {name: array for name, array, _ in inputs if name in runtime}


def assert_matches_ort(model: onnx.ModelProto, feeds: dict, atol: float = 1e-5) -> torch.nn.Module:
    """Reimport ``model`` (eval mode) and compare every output with onnxruntime."""
    module = reimport(model).eval()
    expected = run_ort(model, feeds)
    actual = run_torch(module, model, feeds)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape, (a.shape, e.shape)
        assert a.dtype == e.dtype, (a.dtype, e.dtype)
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=atol)
    return module


def check_op(op, inputs, attrs=None, *, opset=17, n_outputs=1, dynamic=False, atol=1e-5):
    """One-call form: build, run both, compare; returns the reimported module."""
    model = op_model(op, inputs, attrs, opset=opset, n_outputs=n_outputs, dynamic=dynamic)
    return assert_matches_ort(model, feeds_of(model, inputs), atol=atol)


def with_roles(model: onnx.ModelProto, params=(), buffers=()) -> onnx.ModelProto:
    """Add the exporter's parameter/buffer metadata (what qdqforge.export writes)."""
    from qdqforge.graph import meta

    model.metadata_props.add(key=meta.PARAMETERS, value=meta.dump_names(list(params)))
    model.metadata_props.add(key=meta.BUFFERS, value=meta.dump_names(list(buffers)))
    return model
