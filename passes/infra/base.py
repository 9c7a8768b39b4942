"""The pass contract: ``requires -> call -> ensures``, returning a :class:`PassResult`.

A pass rewrites a :class:`qdqforge.graph.ir.Graph` in place. Its options are a frozen dataclass
given to its constructor, named once as the type argument (``GraphPass[FoldBnOptions]``, which
sets ``options_type``); ``name``, a class keyword (``name="fold_bn"``) or attribute, is its
registry and CLI key. Results it
hands on beyond the graph are typed fields of :class:`PassContext`. "Does not apply here" is a
counted reason in ``stats`` (and a debug log line), never an exception; exceptions mean bad
input or a broken invariant. Every node a pass creates is stamped with
``graph.stamp(node, self.name, rule, origin)`` so the diff viewer can say who made it.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

from qdqforge.graph.ir import Graph
from qdqforge.passes.infra.options import NoOptions, options_for_pass
from qdqforge.passes.infra.results import ArqWeightResults


@dataclass(frozen=True)
class PassResult:
    """What a pass did: the graph, whether it changed, and counters such as ``bn_folded``."""

    graph: Graph
    modified: bool
    stats: Mapping[str, int] = field(default_factory=dict)


@dataclass
class PassContext:
    """Data shared by the passes of one pipeline run (per-pass options go to each constructor).

    Attributes:
        config: the validated quantization config the passes read (None for plain rewrites);
            each pass states the part it reads as a Protocol (``passes/ptq/ptq_settings.py``,
            ``passes/qat/retrain_layers.py``), so passes never import ``front``.
        config_path: the config file named on the command line (``passes run --config``).
        arq_weights: what ``arq_weights`` hands on (weight scales, AdaRound's float weights).
    """

    config: Any = None
    config_path: str | None = None
    arq_weights: ArqWeightResults = field(default_factory=ArqWeightResults)


OptionsT = TypeVar("OptionsT")


class GraphPass(abc.ABC, Generic[OptionsT]):
    """Base class of every pass. The first docstring line is what ``passes list`` shows.

    ``class FoldBatchNormPass(GraphPass[FoldBnOptions], name="fold_bn")`` is the same as a
    plain ``GraphPass`` subclass with ``name = "fold_bn"`` and ``options_type = FoldBnOptions``.
    """

    name: ClassVar[str]
    options_type: ClassVar[type] = NoOptions
    options: OptionsT

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
        for base in cls.__dict__.get("__orig_bases__", ()):
            if get_origin(base) is GraphPass:
                (cls.options_type,) = get_args(base)

    def __init__(self, options: Any = None) -> None:
        """``options``: an ``options_type`` instance, a dict of its fields, or None (defaults).

        Raises:
            PassError: an unknown option key, or options of another type.
        """
        self.options = options_for_pass(self.name, self.options_type, options)

    def requires(self, graph: Graph, ctx: PassContext) -> None:
        """Raise PreconditionError if the pass cannot run on ``graph``."""

    @abc.abstractmethod
    def call(self, graph: Graph, ctx: PassContext) -> PassResult:
        """Rewrite ``graph`` in place."""

    def ensures(self, graph: Graph, ctx: PassContext) -> None:
        """Raise PostconditionError if the pass broke a promise."""

    def __call__(self, graph: Graph, ctx: PassContext | None = None) -> PassResult:
        ctx = ctx or PassContext()
        self.requires(graph, ctx)
        result = self.call(graph, ctx)
        self.ensures(result.graph, ctx)
        return result

    @classmethod
    def summary(cls) -> str:
        """First line of the class docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
