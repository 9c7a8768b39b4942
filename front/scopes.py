"""Recover the torch module that produced an ONNX node from the exporter's bookkeeping.

- dynamo writes ``pkg.torch.onnx.name_scopes`` into node metadata, a Python-literal list of
  qualified module names from the root down, ending with the op: ``['', 'layer1', 'layer1.0',
  'layer1.0.conv1', 'conv2d']`` -> ``layer1.0.conv1``.
- TorchScript names nodes after their scope path: ``/layer2/layer2.0/downsample/downsample.0/Conv``.
  Each segment is the module's qualified name cut after its last non-numeric atom
  (``layer2.0.downsample.0`` -> ``downsample.0``), and a module's second call gets a ``_1`` suffix
  (``/shared_1/Conv``). The path is walked down ``named_modules()`` to get the full name back.

Both return ``None`` when the exporter left nothing to go on (helper Constants, shared-weight
Identity nodes); such nodes are left unannotated rather than guessed.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict

DYNAMO_SCOPES = "pkg.torch.onnx.name_scopes"
_CALL_SUFFIX = re.compile(r"_\d+$")


def dynamo_module(node_meta: dict[str, str], modules: set[str]) -> str | None:
    """The deepest scope in ``name_scopes`` that is a module of the exported model."""
    text = node_meta.get(DYNAMO_SCOPES)
    if not text:
        return None
    try:
        scopes = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    for scope in reversed(scopes[:-1]):  # the last entry is the op (conv2d_1)
        if scope in modules:
            return scope
    return None


def unqualified(name: str) -> str:
    """TorchScript's scope segment for a module: ``encoder.layers.0`` -> ``layers.0``."""
    atoms = name.split(".")
    for i in range(len(atoms) - 1, -1, -1):
        if not atoms[i].isnumeric():
            return ".".join(atoms[i:])
    return name


class ScopeIndex:
    """Resolves TorchScript scope paths to qualified module names."""

    def __init__(self, modules: set[str]) -> None:
        self.by_segment: dict[str, list[str]] = defaultdict(list)
        for name in sorted(modules, key=len):
            if name:
                self.by_segment[unqualified(name)].append(name)

    def resolve(self, node_name: str) -> str | None:
        """``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``; ``/Relu`` -> ``""``."""
        if not node_name.startswith("/"):
            return None
        current = ""
        for segment in node_name.split("/")[1:-1]:  # drop the leading "" and the op name
            child = self._child(current, segment) or self._child(
                current, _CALL_SUFFIX.sub("", segment)
            )
            if child is None:
                break
            current = child
        return current

    def _child(self, parent: str, segment: str) -> str | None:
        candidates = self.by_segment.get(segment, [])
        for name in candidates:  # shortest first: the nearest descendant
            if not parent or name.startswith(parent + "."):
                return name
        return candidates[0] if len(candidates) == 1 else None
