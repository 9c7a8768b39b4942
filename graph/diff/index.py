"""Read-only lookup tables over one ModelProto for the diff: the producers and consumers of
:class:`~qdqforge.graph.graph_index.GraphIndex`, plus node metadata, names and initializers.

The diff works on protos rather than gs graphs: a 10k-node model indexes in milliseconds, node
metadata (provenance) is right there in ``metadata_props``, and nothing is copied or mutated.
"""

from __future__ import annotations

from collections import Counter
from functools import cached_property

import numpy as np
import onnx
from onnx import numpy_helper

from qdqforge.graph import meta as keys
from qdqforge.graph.diff.model import NodeInfo, Provenance, TensorInfo
from qdqforge.graph.diff.values import attr_text, dtype_name
from qdqforge.graph.graph_index import GraphIndex


class DiffIndex(GraphIndex):
    """Nodes of one model with their metadata, producers, consumers and initializers."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.nodes = list(model.graph.node)
        super().__init__([n.input for n in self.nodes], [n.output for n in self.nodes])
        self.meta = [{p.key: p.value for p in n.metadata_props} for n in self.nodes]
        self.initializers = {t.name: t for t in model.graph.initializer}
        self.name_counts = Counter(n.name for n in self.nodes)
        self._arrays: dict[str, np.ndarray] = {}

    @cached_property
    def by_name(self) -> dict[str, int]:
        """Non-empty node names that occur exactly once -> node index."""
        return {
            n.name: i for i, n in enumerate(self.nodes) if self.name_counts[n.name] == 1 and n.name
        }

    def array(self, name: str) -> np.ndarray:
        """Value of initializer ``name`` (decoded once)."""
        if name not in self._arrays:
            self._arrays[name] = numpy_helper.to_array(self.initializers[name])
        return self._arrays[name]

    def provenance(self, i: int) -> Provenance | None:
        """Provenance stamped on node ``i``, if a qdqforge pass stamped one."""
        meta = self.meta[i]
        if keys.PASS not in meta:
            return None
        origin = tuple(o for o in meta.get(keys.ORIGIN, "").split(",") if o)
        return Provenance(
            meta[keys.PASS], meta.get(keys.RULE, ""), meta.get(keys.ACTION, ""), origin
        )

    def info(self, i: int) -> NodeInfo:
        """Display record of node ``i``."""
        node = self.nodes[i]
        return NodeInfo(
            name=node.name,
            op=node.op_type,
            domain=node.domain,
            inputs=tuple(node.input),
            outputs=tuple(node.output),
            attrs={a.name: attr_text(a) for a in node.attribute},
            provenance=self.provenance(i),
            module=self.meta[i].get(keys.MODULE, ""),
        )

    def tensor_info(self, name: str) -> TensorInfo:
        t = self.initializers[name]
        return TensorInfo(name, tuple(int(d) for d in t.dims), dtype_name(t.data_type))
