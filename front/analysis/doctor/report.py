"""The doctor's :class:`Report`: per-layer findings, ranking, skip advice; JSON, HTML, config.

``to_json`` holds everything (the config too), ``from_json`` reads it back; ``write_html`` is
one offline page (:mod:`qdqforge.front.analysis.doctor.html`); ``write_skip_config`` writes the PTQ
config with the skipped layers' ``quant_enable`` false (AMCT's ``skip_layers`` in JSON form).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from qdqforge.errors import ConfigError
from qdqforge.front.analysis.doctor.fidelity import Fidelity
from qdqforge.front.analysis.doctor.layer_report import LayerReport
from qdqforge.front.config.jsonio import write_json
from qdqforge.front.config.ptq import QuantConfig
from qdqforge.front.config.ptq_load import quant_config_from_dict
from qdqforge.graph.io import atomic_write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    """What :func:`qdqforge.analyze` found.

    Attributes:
        config: the PTQ config analyzed.
        layers: one :class:`LayerReport` per analyzed layer, in config order.
        model: fidelity with every analyzed layer quantized (the fake-quant model).
        with_skips: fidelity with every analyzed layer but ``skip`` quantized.
        ranking: analyzed layers, most sensitive first.
        skip: layers advised to stay float, most sensitive first.
        skip_db: the skip threshold used (dB below the median layer).
        disabled: layers the config already leaves float.
        not_analyzed: ``{layer: reason}`` for enabled layers the doctor could not probe.
    """

    config: QuantConfig
    layers: tuple[LayerReport, ...]
    model: Fidelity
    with_skips: Fidelity
    ranking: tuple[str, ...]
    skip: tuple[str, ...]
    skip_db: float
    disabled: tuple[str, ...] = ()
    not_analyzed: dict[str, str] = dataclasses.field(default_factory=dict)

    def layer(self, name: str) -> LayerReport:
        """The report of layer ``name``. Raises KeyError when it was not analyzed."""
        for item in self.layers:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict:
        """JSON object of the whole report."""
        return {
            "model": self.model.to_dict(),
            "with_skips": self.with_skips.to_dict(),
            "ranking": list(self.ranking),
            "skip": list(self.skip),
            "skip_db": self.skip_db,
            "disabled": list(self.disabled),
            "not_analyzed": dict(self.not_analyzed),
            "layers": [item.to_dict() for item in self.layers],
            "config": self.config.to_dict(),
        }

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Report:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        return cls(
            config=quant_config_from_dict(data["config"], "<report config>"),
            layers=tuple(LayerReport.from_dict(item) for item in data["layers"]),
            model=Fidelity.from_dict(data["model"]),
            with_skips=Fidelity.from_dict(data["with_skips"]),
            ranking=tuple(data["ranking"]),
            skip=tuple(data["skip"]),
            skip_db=float(data["skip_db"]),
            disabled=tuple(data["disabled"]),
            not_analyzed=dict(data["not_analyzed"]),
        )

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_json` atomically; returns the path."""
        target = Path(path)
        atomic_write_text(target, self.to_json(indent=1) + "\n")
        return target

    def write_html(self, path: str | os.PathLike) -> Path:
        """Write the offline HTML page (:mod:`.html`); returns its path."""
        from qdqforge.front.analysis.doctor.html import write_report_html

        return write_report_html(self, path)

    def skip_config(self, layers=None) -> QuantConfig:
        """The config with ``layers`` (default: :attr:`skip`) set to ``quant_enable`` false."""
        names = set(self.skip if layers is None else layers)
        unknown = names - set(self.config.layer_names)
        if unknown:
            raise ConfigError(
                f"cannot skip {sorted(unknown)}: not layers of the config "
                f"(its layers: {', '.join(self.config.layer_names)})"
            )
        items = tuple(
            dataclasses.replace(item, quant_enable=False) if item.name in names else item
            for item in self.config.layers
        )
        return dataclasses.replace(self.config, layers=items)

    def write_skip_config(self, path: str | os.PathLike, layers=None) -> Path:
        """Write :meth:`skip_config` as PTQ JSON (the config writer's format); returns the path."""
        target = write_json(path, self.skip_config(layers).to_dict())
        log.info("wrote %s with %d more layer(s) left float", target, len(self.skip))
        return target
