"""``nn.Embedding(padding_idx=p)`` keeps row ``p`` out of training; the exported Gather forgets.

torch's embedding gives the padding row a zero gradient (it stays the pad vector, RoBERTa's
word and position embeddings both have one). The ONNX Gather has no such attribute, so the
reimported module would train that row. The export stamps ``qdqforge.padding_idx`` on each
Gather that reads an embedding's weight (by the node's module and weight name) and the runtime's
Gather converter passes it to ``F.embedding``.
"""

from __future__ import annotations

import onnx
from torch import nn

from qdqforge.graph import meta


def mark_padding_rows(proto: onnx.ModelProto, model: nn.Module) -> int:
    """Stamp ``padding_idx`` on Gathers of padded embeddings' weights; returns how many."""
    weights = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            weights[f"{name}.weight" if name else "weight"] = module.padding_idx
    weights.update(_aliased(proto, weights))
    stamped = 0
    for node in proto.graph.node:
        if node.op_type == "Gather" and node.input and node.input[0] in weights:
            node.metadata_props.add(key=meta.PADDING_IDX, value=str(weights[node.input[0]]))
            stamped += 1
    return stamped


def _aliased(proto: onnx.ModelProto, weights: dict[str, int]) -> dict[str, int]:
    """Tied embeddings: the initializer may carry another of the tensor's names."""
    found = {}
    for alias, target, _ in meta.load_aliases(meta.model_value(proto, meta.ALIASES)):
        if alias in weights:
            found[target] = weights[alias]
    return found
