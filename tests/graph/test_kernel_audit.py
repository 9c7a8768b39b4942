"""The audit of onnxruntime's fused integer kernels against their float decomposition.

On the graph a default session runs, each fused node (QLinearConv, QGemm, ...) is recomputed from
its own inputs through DequantizeLinear -> float op -> QuantizeLinear with every optimization off.
Weights at 64 (7 bits): the kernel and the decomposition agree exactly. Weights at 127 with u8
inputs near 255: on a CPU without VNNI the kernel saturates its int16 pair sums, and the audit
shows it on the planted outputs (on a VNNI CPU it must agree exactly too).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import helper, numpy_helper

from qdqforge.front.save import verify_runtime
from qdqforge.front.save.verify_budget import Comparison, Violation
from qdqforge.front.save.verify_runtime import cpu_has_vnni
from qdqforge.graph import held_arrays, kernel_audit, mapped, numerics
from qdqforge.graph.exposed_run import run_exposed
from qdqforge.graph.kernel_audit import KernelCheck, audit_kernels, fused_integer_nodes
from tests.helpers.onnx_graphs import make_model, tensor_info
from tests.helpers.qdq_cases import qdq_conv, qdq_linear
from tests.helpers.resident import mapped_resident_bytes

CASES = {"conv": (qdq_conv, "QLinearConv"), "linear": (qdq_linear, "QGemm")}


@pytest.mark.parametrize("case", list(CASES))
def test_seven_bit_weights_agree_exactly(case):
    build, op = CASES[case]
    model, feeds = build(64)
    optimized = numerics.optimized_graph(model)
    assert [n.op_type for n in fused_integer_nodes(optimized)] == [op]
    (check,) = audit_kernels(optimized, feeds)
    assert (check.op_type, check.differ, check.max_steps) == (op, 0, 0)
    assert check.total == numerics.run(model, feeds)[0].size
    assert check.weight_max == 64


@pytest.mark.parametrize("case", list(CASES))
def test_saturating_pairs_show_where_the_cpu_has_no_vnni(case):
    build = CASES[case][0]
    model, feeds = build(127)
    (check,) = audit_kernels(numerics.optimized_graph(model), feeds)
    assert check.weight_max == 127
    if cpu_has_vnni() is not False:
        assert check.differ == 0, "a VNNI CPU sums in int32: no saturation expected"
        return
    assert check.differ > 0 and check.max_steps > 1
    default = numerics.default_session(model).run(None, feeds)[0]
    reference = numerics.run(model, feeds)[0]  # optimizations off: no integer kernel
    assert np.abs(default.astype(np.float64) - reference).max() > 0.5  # the user sees it


def test_a_graph_without_integer_kernels_has_nothing_to_audit():
    model = make_model(
        [helper.make_node("Relu", ["input"], ["output"])],
        [tensor_info("input", [2, 3])],
        [tensor_info("output", None)],
    )
    feeds = {"input": np.ones((2, 3), np.float32)}
    assert audit_kernels(numerics.optimized_graph(model), feeds) == []


@pytest.mark.parametrize("weight_max", [127, 64, None])
def test_the_cause_names_saturation_only_where_weights_can_saturate(monkeypatch, weight_max):
    monkeypatch.setattr(verify_runtime, "cpu_has_vnni", lambda: False)
    check = KernelCheck("n", "QLinearConv", ("x",), 10, 1, 2, 0.1, True, weight_max)
    cause = verify_runtime._kernel_cause(check)
    if weight_max == 64:  # 2 * 255 * 64 fits int16: something else differs
        assert cause.startswith("not int8 saturation (its weights fit 7 bits, |w| <= 64)")
        assert not verify_runtime._can_saturate(check)
    else:
        assert cause.startswith("int8 saturation") and verify_runtime._can_saturate(check)


@pytest.mark.parametrize("vnni", [False, None, True])
def test_weight_reduce_range_is_advised_only_where_int8_can_saturate(monkeypatch, vnni):
    """With VNNI the products are summed into int32: 7-bit weights would not change the result."""
    monkeypatch.setattr(verify_runtime, "cpu_has_vnni", lambda: vnni)
    wide = KernelCheck("n", "QLinearConv", ("x",), 10, 1, 2, 0.1, True, 127)
    narrow = KernelCheck("n", "QLinearConv", ("x",), 10, 1, 2, 0.1, True, 64)
    violation = Violation("qdq", "n", "differs by 2 steps")
    for kernels, tensor in (([wide], "n"), ([wide, narrow], "elsewhere.quant.out")):
        comparison = Comparison("fake_quant_vs_qdq", "runtime", [], [], kernels=kernels)
        issue = verify_runtime.runtime_issue(
            "qdq", comparison, dataclasses.replace(violation, tensor=tensor), ["elsewhere"]
        )
        saturating = vnni is not True
        assert (issue.fix == verify_runtime.FIX) == saturating, (kernels, tensor, issue.fix)
        assert saturating or "weight_reduce_range" not in issue.fix
    only_narrow = Comparison("fake_quant_vs_qdq", "runtime", [], [], kernels=[narrow])
    issue = verify_runtime.runtime_issue("qdq", only_narrow, violation, [])
    assert issue.fix == verify_runtime.FIX_NO_SATURATION


@pytest.mark.parametrize("case", list(CASES))
def test_references_in_one_session_equal_one_session_per_node(case):
    """The audit recomputes every fused node in one session: each node's reference is the one
    a session of its own gives, bit for bit, also for two nodes of the same name."""
    model, feeds = CASES[case][0](127)
    optimized = numerics.optimized_graph(model)
    nodes = fused_integer_nodes(optimized)
    constants = {i.name: held_arrays.array_of(i) for i in optimized.graph.initializer}
    wanted = sorted({t for n in nodes for t in [*n.input, n.output[0]] if t and t not in constants})
    values = {**constants, **run_exposed(optimized, wanted, feeds)}
    alone = [kernel_audit._references([node], values)[0] for node in nodes]
    together = kernel_audit._references(nodes + nodes, values)  # the same names twice
    assert len(together) == 2 * len(nodes)
    for got, want in zip(together, alone + alone):
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_nodes_are_grouped_by_the_mapped_weight_bytes_they_read(tmp_path, monkeypatch):
    with mapped.SpillFile(tmp_path) as spill:
        values = {f"w{i}": spill.put(np.ones(1024, np.int8)) for i in range(3)}
    values["x"] = np.ones(4096, np.float32)  # in memory: not counted
    nodes = [helper.make_node("MatMulInteger", ["x", f"w{i}"], [f"y{i}"]) for i in range(3)]
    monkeypatch.setattr(kernel_audit, "SEGMENT_BYTES", 2048)
    groups = kernel_audit._node_groups(list(enumerate(nodes)), values)
    assert [[i for i, _ in group] for group in groups] == [[0, 1], [2]]
    monkeypatch.setattr(kernel_audit, "SEGMENT_BYTES", 1)  # a node reading more is alone
    groups = kernel_audit._node_groups(list(enumerate(nodes)), values)
    assert [[i for i, _ in group] for group in groups] == [[0], [1], [2]]


@pytest.mark.parametrize("case", list(CASES))
def test_an_audit_of_mapped_weights_in_groups_finds_the_same_and_hands_pages_back(
    tmp_path, monkeypatch, case
):
    model, feeds = CASES[case][0](127)
    optimized = numerics.optimized_graph(model)
    want = audit_kernels(optimized, feeds)
    weights = {t.name: numpy_helper.to_array(t) for t in optimized.graph.initializer if t.dims}
    with mapped.SpillFile(tmp_path) as spill:
        views = {name: spill.put(array) for name, array in weights.items()}
    held = held_arrays.held_model(optimized, views)
    monkeypatch.setattr(kernel_audit, "SEGMENT_BYTES", 1)
    assert audit_kernels(held.model, feeds) == want
    assert mapped_resident_bytes(views.values()) == 0
