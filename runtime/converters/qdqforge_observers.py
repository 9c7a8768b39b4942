"""Observers of the ``qdqforge`` domain: identity nodes that gather calibration statistics.

``qdqforge::ActObserver(x)`` (``act_observe`` pass) becomes an :class:`ActObserverOp` that feeds
the first ``batch_num`` forwards to the IFMR or HFMG kernel observer and then holds
``scale_d``/``offset_d`` (``params``); later forwards return ``x`` fake-quantized on that grid,
int8 or int16 (the node's ``num_bits``; the fake-quant model's QuantizeLinear/DequantizeLinear,
same rounding). Under ``torch.distributed`` the observer's state is merged over the ranks before
it computes (:mod:`qdqforge.runtime.calibration.observer_sync`). Observers of one tensor with equal
settings share one computation (:func:`share_observers`).

``qdqforge::DmqObserver(x, w_max)`` (inserted by the ``dmq_observe`` pass) becomes a
:class:`DmqObserverOp`: it returns ``x`` unchanged and folds ``max |x|`` per input channel into a
running maximum over every forward (AMCT keeps only the last batch, docs/amct.md §4.4),
maximized over the ranks after every forward under ``torch.distributed`` (exact). ``factors()``
gives ``tensor_balance_factor`` from that maximum and the constant weight maxima.
"""

from __future__ import annotations

import torch
from torch import nn

from qdqforge.errors import ConversionError
from qdqforge.graph.qdqforge_ops import ACT_OBSERVER, DMQ_OBSERVER, DOMAIN
from qdqforge.runtime import distributed
from qdqforge.runtime.calibration.dmq import DmqObserver, balance_factors
from qdqforge.runtime.calibration.hfmg import HfmgObserver
from qdqforge.runtime.calibration.ifmr import IfmrObserver
from qdqforge.runtime.calibration.ifmr_cost import candidate_problem
from qdqforge.runtime.calibration.observer_sync import sync_observer
from qdqforge.runtime.kernels.fake_quant_ref import fake_quantize
from qdqforge.runtime.kernels.quant_math import int_range
from qdqforge.runtime.registry import Emitter, OnnxNode, converter


class DmqObserverOp(nn.Module):
    """Identity that records the running per-channel ``max |x|`` of a DMQ layer's input.

    Attributes:
        layer: torch name of the balanced layer.
        alpha: migration strength.
        act_max: running ``[Cin]`` maximum (empty until the first forward).
        weight_max: ``[Cin]`` weight maxima of the (BN-folded) weight.
    """

    def __init__(self, layer: str, alpha: float, channel_axis: int, weight_max: torch.Tensor):
        super().__init__()
        self.layer, self.alpha, self.channel_axis = layer, alpha, channel_axis
        self.register_buffer("weight_max", weight_max.float())
        self.register_buffer("act_max", torch.empty(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        observer = DmqObserver(self.channel_axis, self.layer)
        observer.absmax = self.act_max if self.act_max.numel() else None
        observer.update(x)
        self.act_max = distributed.all_reduce_max(observer.absmax.to(self.weight_max.dtype))
        return x

    @property
    def seen(self) -> bool:
        """True once a forward has run."""
        return self.act_max.numel() > 0

    def factors(self) -> torch.Tensor:
        """``tensor_balance_factor`` per input channel (``kernels.dmq.balance_factors``)."""
        return balance_factors(self.act_max, self.weight_max, self.alpha, self.layer)


@converter(DMQ_OBSERVER.op, versions=(1,), domain=DOMAIN)
def convert_dmq_observer(node: OnnxNode, emit: Emitter):
    w_max = emit.const(1)
    if w_max is None:
        raise ConversionError(f"DmqObserver node {node.name!r}: weight maxima must be constant")
    op = DmqObserverOp(
        node.attr("layer"),
        float(node.attr("alpha")),
        int(node.attr("channel_axis", 1)),
        torch.from_numpy(w_max.copy()),
    )
    return emit.module(op, emit.value(0))


class ActObserverOp(nn.Module):
    """Identity that feeds the first ``batch_num`` inputs to IFMR/HFMG, then holds the result.

    Attributes:
        layer: torch name of the quantized layer.
        batch_num: forwards to observe (AMCT's ``batch_num``).
        batches: forwards observed so far.
        params: ``ActivationQuantParams`` (scale, offset, clips) once ``batch_num`` were seen.
        num_bits: bit width of the grid (8, or 16 for AMCT's A16W8).
    """

    def __init__(self, layer: str, batch_num: int, observer, settings: tuple = ()) -> None:
        super().__init__()
        self.layer, self.batch_num, self.observer = layer, batch_num, observer
        self.batches, self.params = 0, None
        self.num_bits = int(observer.num_bits)
        self.settings = settings  # the node's attributes but the layer: equal means same result
        self.leader: ActObserverOp | None = None  # set by share_observers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.params is not None:
            scale = torch.tensor(self.params.scale, dtype=torch.float32).to(x)
            return fake_quantize(x, scale, self.params.offset, *int_range(self.num_bits))
        if self.leader is not None:  # the leader observed this very tensor just before
            self.batches += 1
            if self.batches == self.batch_num:
                self.params = self.leader.params
            return x
        with torch.no_grad():
            if self.batches == 0 and isinstance(self.observer, IfmrObserver):
                self.observer.ranks = distributed.world_size()  # tails sized for the merge
            self.observer.update(x)
        self.batches += 1
        if self.batches == self.batch_num:
            sync_observer(self.observer)  # across ranks under torch.distributed
            self.params = self.observer.compute()
        return x

    def quant_grid(self) -> tuple[float, int] | None:
        """``(scale, offset)`` of the grid the output lies on once calibrated, else None."""
        if self.params is None:
            return None
        return float(torch.tensor(self.params.scale, dtype=torch.float32)), int(self.params.offset)


def make_act_observer(node: OnnxNode):
    """The IFMR or HFMG kernel observer an ``ActObserver`` node asks for."""
    algo, layer = node.attr("algo", "ifmr"), node.attr("layer")
    common = {"num_bits": int(node.attr("num_bits", 8)), "layer": layer}
    symmetric = bool(node.attr("symmetric", 0))
    if algo == "hfmg":
        return HfmgObserver(
            num_of_bins=int(node.attr("num_of_bins")), symmetric=symmetric, **common
        )
    if algo != "ifmr":
        raise ConversionError(f"ActObserver node {node.name!r}: unknown algo {algo!r}")
    search = (tuple(node.attr("search_range") or ()), node.attr("search_step"))
    problem = None if len(search[0]) != 2 else candidate_problem(*search)  # a tampered file
    if len(search[0]) != 2 or problem is not None:
        raise ConversionError(
            f"ActObserver node {node.name!r}: search_range {list(search[0])}, search_step "
            f"{search[1]!r}: {problem or 'expected [start, end]'}"
        )
    return IfmrObserver(
        max_percentile=node.attr("max_percentile"),
        min_percentile=node.attr("min_percentile"),
        search_range=tuple(node.attr("search_range")),
        search_step=node.attr("search_step"),
        symmetric=symmetric,
        expected_batches=int(node.attr("batch_num", 1)),
        **common,
    )


@converter(ACT_OBSERVER.op, versions=(1,), domain=DOMAIN)
def convert_act_observer(node: OnnxNode, emit: Emitter):
    settings = tuple(sorted((k, repr(v)) for k, v in node.attrs.items() if k != "layer"))
    batch_num, observer = int(node.attr("batch_num", 1)), make_act_observer(node)
    op = ActObserverOp(node.attr("layer"), batch_num, observer, settings)
    return emit.module(op, emit.value(0))


def share_observers(module: torch.fx.GraphModule) -> int:
    """Let observers of the same tensor with the same settings take the first one's result.

    Layers reading one tensor (an attention block's q, k and v projections; a residual block's
    first conv and its downsample) each get an observer on it; with equal settings they would
    compute the same statistics from the same values. The first in graph order (which runs
    first in every forward) observes, the others count the batches and copy its
    ``scale_d``/``offset_d``: the same record, one pass instead of several. Returns how many
    observers follow another.
    """
    first: dict[tuple, ActObserverOp] = {}
    shared = 0
    for node in module.graph.nodes:
        op = module.get_submodule(node.target) if node.op == "call_module" else None
        if not isinstance(op, ActObserverOp) or not node.args:
            continue
        key = (node.args[0], op.settings)
        if key in first:  # a plain attribute, not a submodule: the tree stays as it was
            object.__setattr__(op, "leader", first[key])
            shared += 1
        else:
            first[key] = op
    return shared
