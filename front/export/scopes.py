"""Recover the torch module that produced an ONNX node from the exporter's bookkeeping.

- dynamo writes ``pkg.torch.onnx.name_scopes`` into node metadata, a Python-literal list of
  qualified module names from the root down, ending with the op: ``['', 'layer1', 'layer1.0',
  'layer1.0.conv1', 'conv2d']`` -> ``layer1.0.conv1``.
- TorchScript names nodes after their scope path: ``/layer2/layer2.0/downsample/downsample.0/Conv``
  (a segment may hold ``/`` itself: a ModuleDict key ``x/y``).
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
from collections.abc import Sequence

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

    def resolve(self, node_name: str, owners: Sequence[str] = ()) -> str | None:
        """``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``; ``/Relu`` -> ``""``.

        A module name may itself hold ``/`` (a ModuleDict key ``x/y``), so segments are not
        split blindly: the walk tries the longest segment first and keeps the parse that
        consumes the whole path. When no parse does (TorchScript cuts a name at a NUL: key
        ``"a\x00b"`` becomes segment ``a``), the node goes to the one module among ``owners``
        (the modules whose parameters it reads) below the deepest module reached, else to that
        module.
        """
        if not node_name.startswith("/"):
            return None
        inner = node_name[1:]
        if "/" not in inner:
            return ""
        found, complete = self._walk("", inner.rpartition("/")[0], first=True)
        if complete:
            return found
        below = sorted({o for o in owners if o.startswith(f"{found}.") or (not found and o)})
        return below[0] if len(below) == 1 else found

    def _walk(self, current: str, path: str, first: bool = False) -> tuple[str, bool]:
        """(deepest module reached from ``current`` along ``path``, whether all was consumed);
        ``first``: ``path`` is the whole scope, so an empty one is an empty segment."""
        if not path and not first:
            return current, True
        best = current
        cuts = [i for i, ch in enumerate(path) if ch == "/"] + [len(path)]
        for cut in reversed(cuts):
            segment = path[:cut]
            child = self._child(current, segment) or self._child(
                current, _CALL_SUFFIX.sub("", segment)
            )
            if child is None:
                continue
            found, complete = self._walk(child, path[cut + 1 :])
            if complete:
                return found, True
            best = found if len(found) > len(best) else best
        return best, False

    def _child(self, parent: str, segment: str) -> str | None:
        candidates = self.by_segment.get(segment, [])
        for name in candidates:  # shortest first: the nearest descendant
            if not parent or name.startswith(parent + "."):
                return name
        return candidates[0] if len(candidates) == 1 else None
