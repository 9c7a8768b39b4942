"""Proto-level fix-ups applied to every freshly exported graph.

- Dropout: the model is exported with Dropout in training mode so the graph keeps Dropout nodes
  (the reimported module must train with dropout). Their ``training_mode`` input is dropped, which
  gives the node ONNX inference semantics (identity in onnxruntime) and keeps ``ratio``::

      Dropout(x, ratio, training_mode=true)  ->  Dropout(x, ratio)

- Outputs are renamed ``output`` / ``output_0..`` (dynamo names them after fx nodes).
- Node names are made unique and non-empty, deterministically (first holder keeps its name).
"""

from __future__ import annotations

import onnx


def dropout_to_inference(model: onnx.ModelProto) -> int:
    """Drop the ``training_mode`` input of every Dropout node; returns how many changed."""
    changed, orphaned = 0, set()
    for node in model.graph.node:
        if node.op_type == "Dropout" and len(node.input) > 2:
            orphaned.update(name for name in node.input[2:] if name)
            del node.input[2:]
            changed += 1
    _remove_unused_constants(model.graph, orphaned)
    return changed


def _remove_unused_constants(graph: onnx.GraphProto, candidates: set[str]) -> None:
    """Delete what only fed the removed inputs: nodes whose outputs nobody reads any more
    (walking back from ``candidates``: Constant -> Cast -> ...) and unread initializers."""
    while candidates:
        used = {name for node in graph.node for name in node.input}
        used.update(out.name for out in graph.output)
        dead = candidates - used
        doomed = [n for n in graph.node if n.output and set(n.output) <= dead | {""}]
        doomed = [n for n in doomed if dead & set(n.output)]
        for node in doomed:
            graph.node.remove(node)
        inits = [t for t in graph.initializer if t.name in dead]
        for tensor in inits:
            graph.initializer.remove(tensor)
        candidates = {name for n in doomed for name in n.input if name}


def rename_outputs(model: onnx.ModelProto, names: list[str]) -> None:
    """Rename the graph outputs to ``names``, updating every producer and consumer."""
    graph = model.graph
    passthrough = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for output, new in zip(graph.output, names):
        old = output.name
        if old == new:
            continue
        if old in passthrough:  # an input/weight returned as is: give it its own tensor
            graph.node.append(onnx.helper.make_node("Identity", [old], [new], name=f"{new}_id"))
        else:
            _rename_tensor(graph, old, new)
        output.name = new


def _rename_tensor(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        _replace(node.output, old, new)
        _replace(node.input, old, new)
        for attr in node.attribute:  # subgraphs (If/Loop/Scan) may read the tensor by name
            for sub in [attr.g, *attr.graphs]:
                for inner in sub.node:
                    _replace(inner.input, old, new)
    for info in graph.value_info:
        if info.name == old:
            info.name = new


def _replace(names, old: str, new: str) -> None:
    for i, name in enumerate(names):
        if name == old:
            names[i] = new


def uniquify_node_names(model: onnx.ModelProto) -> int:
    """Name unnamed nodes ``{op}_{index}`` and suffix duplicates; returns how many changed."""
    taken = {n.name for n in model.graph.node if n.name}
    seen: set[str] = set()
    renamed = 0
    for index, node in enumerate(model.graph.node):
        if node.name and node.name not in seen:
            seen.add(node.name)
            continue
        base = node.name or f"{node.op_type}_{index}"
        name, k = base, 0
        while name in taken or name in seen:
            k += 1
            name = f"{base}_{k}"
        node.name = name
        seen.add(name)
        taken.add(name)
        renamed += 1
    return renamed
