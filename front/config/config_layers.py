"""What the PTQ and the QAT config share: their list of per-layer entries and four global options.

A config file is one JSON object: global options, then one object per layer, by layer name::

    {"version": 1, "batch_num": 2, ..., "conv1": {...layer...}, "fc": {...layer...}}

:func:`read_config_fields` reads what both flows read alike, in file order: ``version`` and
``batch_num``, the flow's own globals, the optional ``fakequant_precision_mode`` and
``weight_reduce_range``, and the layers (:func:`read_layer_entries` sorts the keys: a global
option is skipped, a non-object or an unknown layer is an issue, the rest is read by the flow's
own layer reader). :class:`ConfigLayers` gives both config dataclasses their lookup by layer name
and the end of their ``to_dict``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qdqforge.front.config import fields as f
from qdqforge.front.config.issues import Issues
from qdqforge.front.config.jsonio import report_duplicates
from qdqforge.front.config.layer_types import QuantLayer

PRECISION_MODES = ("DEFAULT", "FORCE_FP16_QUANT", None)

LayerReader = Callable[[str, Mapping, "QuantLayer | None", Issues], Any]
GlobalsReader = Callable[[Mapping, "Mapping[str, QuantLayer] | None", Issues], dict[str, Any]]


def read_config_fields(
    tree: Mapping,
    issues: Issues,
    global_keys: Sequence[str],
    known: Mapping[str, QuantLayer] | None,
    read_layer: LayerReader,
    read_flow_globals: GlobalsReader | None = None,
) -> dict[str, Any]:
    """The config dataclass's fields from ``tree``, violations collected in ``issues``.

    Duplicate keys and the layers are reported first, then the globals in AMCT's key order:
    ``version``, ``batch_num``, the flow's own (``read_flow_globals(tree, known, issues)``),
    ``fakequant_precision_mode``, ``weight_reduce_range``.

    Args:
        tree: the parsed JSON object.
        issues: where violations are collected.
        global_keys, known, read_layer: as for :func:`read_layer_entries`.
        read_flow_globals: the flow's reader of its own globals, as field values by name.
    """
    report_duplicates(tree, "", issues)
    layers = read_layer_entries(tree, global_keys, known, issues, read_layer)
    return {
        "version": f.get_choice(tree, "version", "", issues, 1, (1,)),
        "batch_num": f.get_int(tree, "batch_num", "", issues, 1, lambda v: v > 0, "integer > 0"),
        **(read_flow_globals(tree, known, issues) if read_flow_globals else {}),
        "fakequant_precision_mode": read_precision_mode(tree, issues),
        "weight_reduce_range": f.get_bool(tree, "weight_reduce_range", "", issues, False),
        "layers": layers,
    }


def read_layer_entries(
    tree: Mapping,
    global_keys: Sequence[str],
    known: Mapping[str, QuantLayer] | None,
    issues: Issues,
    read_layer: LayerReader,
) -> tuple:
    """Every layer object of ``tree``, read by ``read_layer(name, object, layer, issues)``.

    Args:
        tree: the parsed JSON object.
        global_keys: the flow's global options (not layers).
        known: the model's layers by name, or None when no model is given (names not checked).
        issues: where violations are collected.
        read_layer: the flow's reader of one layer object.
    """
    entries = []
    for key, value in tree.items():
        if key in global_keys:
            continue
        if not isinstance(value, Mapping):
            issues.unknown_key("", key, global_keys)
        elif known is not None and key not in known:
            issues.unknown_key("", key, known, what="layer")
        else:
            entries.append(read_layer(key, value, known.get(key) if known else None, issues))
    return tuple(entries)


def read_precision_mode(tree: Mapping, issues: Issues) -> str | None:
    """``fakequant_precision_mode``: DEFAULT, FORCE_FP16_QUANT or absent."""
    return f.get_choice(tree, "fakequant_precision_mode", "", issues, None, PRECISION_MODES)


class ConfigLayers:
    """Lookup by name over a config dataclass's ``layers`` (file or model order)."""

    layers: tuple

    def layer(self, name: str):
        """The entry of layer ``name``. Raises KeyError when absent."""
        for item in self.layers:
            if item.name == name:
                return item
        raise KeyError(name)

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Names of all layers, in order."""
        return tuple(item.name for item in self.layers)

    def _with_options_and_layers(self, out: dict) -> dict:
        """``out`` (the flow's first globals) + the optional shared globals + every layer."""
        if self.fakequant_precision_mode is not None:
            out["fakequant_precision_mode"] = self.fakequant_precision_mode
        if self.weight_reduce_range:
            out["weight_reduce_range"] = True
        for item in self.layers:
            out[item.name] = item.to_dict()
        return out
