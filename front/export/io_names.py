"""``input_names`` / ``output_names``: checked before the export, applied to the graph after.

AMCT's arguments rename the ONNX graph's inputs and outputs in order. A name must be a
non-empty string, used once among both lists, and not any other tensor's name in the graph;
there can be no more names than inputs (outputs). ``input_names=[""]`` used to rename the input
to the empty name (ONNX's marker of an absent optional input), so the saved model could not
be run; a bare string ``"x"`` was zipped character by character.
"""

from __future__ import annotations

from qdqforge.errors import ConfigError
from qdqforge.graph.ir import Graph


def check_io_names(input_names, output_names, call: str) -> None:
    """The checks that need no graph: list of non-empty strings, each name once.

    Raises:
        ConfigError: names the argument, the index and the value.
    """
    seen: dict[str, str] = {}
    for arg, names in (("input_names", input_names), ("output_names", output_names)):
        if names is None:
            continue
        if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)):
            raise ConfigError(f"{call}: {arg} must be a list of names, got {names!r}")
        for i, name in enumerate(names):
            where = f"{call}: {arg}[{i}]"
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{where}: got {name!r}; allowed: a non-empty string")
            if name in seen:
                raise ConfigError(f"{where}: {name!r} is already {seen[name]}; names must differ")
            seen[name] = f"{arg}[{i}]"


def rename_io(graph: Graph, input_names, output_names, call: str) -> None:
    """Rename the graph's inputs/outputs in order after :func:`check_io_names`' checks.

    Raises:
        ConfigError: more names than inputs (outputs), or a name another tensor already has.
    """
    check_io_names(input_names, output_names, call)
    tensors = graph.gs.tensors()
    pairs = (
        (graph.gs.inputs, input_names, "input_names"),
        (graph.gs.outputs, output_names, "output_names"),
    )
    for targets, names, arg in pairs:
        names = list(names or ())
        if len(names) > len(targets):
            raise ConfigError(
                f"{call}: {arg} has {len(names)} names; the graph has {len(targets)} "
                f"({', '.join(t.name for t in targets)})"
            )
        renamed = {t.name for t in targets[: len(names)]}
        for i, name in enumerate(names):
            if name in tensors and name not in renamed:
                raise ConfigError(
                    f"{call}: {arg}[{i}]: {name!r} already names a tensor of the graph"
                )
    for targets, names, _ in pairs:
        for tensor, name in zip(targets, names or ()):
            tensor.name = name
