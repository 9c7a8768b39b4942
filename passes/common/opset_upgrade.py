"""opset_upgrade: raise the default-domain opset (to 21 for int16 QuantizeLinear/DequantizeLinear).

Before / after (option ``opset``, default 21)::

    opset_import { domain: "" version: 20 }   Conv, MatMul, ...  (no int16 QuantizeLinear)
    opset_import { domain: "" version: 21 }   the same ops, as onnx.version_converter writes them

ONNX's QuantizeLinear/DequantizeLinear take int16 only from opset 21; before it, onnxruntime
rejects an int16 zero point. onnxruntime's own ``quantize_static`` does the same for 16-bit
types (``onnx.version_converter.convert_version(model, 21)``), so the saved models stay
standard ONNX (no ``com.microsoft`` Q/DQ). On the test models (CNNs, MobileNet, transformers,
exported at opset 17 and 20) onnxruntime gives bit-identical outputs before and after. The IR
version becomes at least 10 (opset 21 needs it). The converter drops ``metadata_props``; node
names survive, so the side tables are kept as they were (module names, provenance). A graph
already at ``opset`` or above is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import onnx.version_converter

from qdqforge.errors import PassError
from qdqforge.graph import io
from qdqforge.graph.ir import Graph
from qdqforge.passes.infra.base import GraphPass, PassContext, PassResult
from qdqforge.passes.infra.registry import register_pass

DEFAULT_OPSET = 21
IR_VERSION = {21: 10}


@dataclass(frozen=True)
class OpsetUpgradeOptions:
    """``opset``: the default-domain opset to reach."""

    opset: int = DEFAULT_OPSET


@register_pass
class OpsetUpgradePass(GraphPass[OpsetUpgradeOptions], name="opset_upgrade"):
    """Convert the graph to a newer default-domain opset (21: int16 Q/DQ) with onnx's converter."""

    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        target = int(self.options.opset)
        before = graph.opset
        if before >= target:
            return PassResult(graph, False, {"already": 1})
        converted = io.from_proto(_convert(io.to_proto(graph), target))
        graph.gs = converted.gs
        graph.opset_imports = dict(converted.opset_imports)
        graph.ir_version = max(graph.ir_version or 0, IR_VERSION.get(target, 0)) or None
        kept = {node.name for node in graph.gs.nodes}
        graph.node_meta = {k: v for k, v in graph.node_meta.items() if k in kept}
        return PassResult(graph, True, {"opset_from": before, "opset_to": target})


def _convert(proto: onnx.ModelProto, target: int) -> onnx.ModelProto:
    try:
        return onnx.version_converter.convert_version(proto, target)
    except Exception as e:
        raise PassError(
            f"opset_upgrade: onnx's version converter cannot take the graph from opset "
            f"{_opset(proto)} to {target} ({e})"
        ) from e


def _opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
