"""Does the model compute something else in training mode than dropout? One eager forward tells.

The export copy runs in "train, normalization eval" mode (:mod:`.attempts`) so that Dropout is
exported; the graph then gets inference semantics and must equal ``model.eval()``. A module that
branches on ``self.training`` in another way (stochastic depth, SpecAugment masks, auxiliary
heads, a train-only code path) makes that graph differ, and exporting it was wasted: the export
was repeated in eval mode. Here the copy runs once in its export mode with every dropout turned
into the identity (a ``TorchFunctionMode`` over the functional dropouts, and ``dropout_p = 0``
for ``scaled_dot_product_attention`` and ``multi_head_attention_forward``, whose inner dropout
the mode does not see) and is compared with ``model.eval()`` on the
same inputs: equal within :data:`TOLERANCE` means dropout is the only difference, so the
training-mode export is the right one; different (or a forward that fails in training mode)
means export in eval mode directly.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # relative max error, as the exported graph's check (front/export/check.py)
_DROPOUTS = {
    F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout,
    torch.dropout, torch.alpha_dropout, torch.feature_dropout, torch.feature_alpha_dropout,
}  # fmt: skip
# functions that apply dropout inside (not seen by the mode): position of their ``dropout_p``
_DROPOUT_P = {F.scaled_dot_product_attention: 4, F.multi_head_attention_forward: 10}


class _NoDropout(TorchFunctionMode):
    """Every dropout call returns its input; attention runs with ``dropout_p=0``."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _DROPOUTS:
            return args[0] if args else kwargs["input"]
        if func in _DROPOUT_P:  # the mode is off inside func: its own dropout is set to 0 here
            args, kwargs = _without_dropout_p(args, kwargs, _DROPOUT_P[func])
        return func(*args, **kwargs)


def _without_dropout_p(args: tuple, kwargs: dict, index: int) -> tuple[tuple, dict]:
    if len(args) > index:
        return (*args[:index], 0.0, *args[index + 1 :]), kwargs
    return args, {**kwargs, "dropout_p": 0.0}


class EvalResult:
    """``model.eval()(*args)``, computed once per export: the training-mode check here and the
    export check (:mod:`.check`) compare against the same eager forward."""

    def __init__(self, args: tuple) -> None:
        self.args = args
        self._result: object = None
        self._done = False

    def of(self, work: nn.Module) -> object:
        """The result, from an eval forward of ``work`` (an export copy; its modes are
        restored) the first time; later calls return it whatever ``work`` they pass."""
        if not self._done:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                self._result = _eval_forward(work, self.args)
            self._done = True
        return self._result


def training_difference(
    work: nn.Module, args: tuple, reference: EvalResult | None = None
) -> str | None:
    """Why ``work`` (the export copy, in its export mode) computes something else than in eval
    mode beyond dropout, or None when it does not. ``work``'s modes are restored (BN running
    statistics do not move: normalization layers are in eval in the export mode); so is the
    RNG. ``reference``: the eval forward to compare with (computed here when absent)."""
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        try:
            with _NoDropout():
                got = _leaves(work(*args))
        except Exception as e:  # a train-only code path that fails on these inputs
            return f"its training-mode forward fails ({type(e).__name__}: {str(e)[:200]})"
    want = _leaves((reference or EvalResult(args)).of(work))
    if len(got) != len(want) or any(g.shape != w.shape for g, w in zip(got, want)):
        return "its training-mode forward returns other outputs"
    error = max((_relative(g, w) for g, w in zip(got, want)), default=0.0)
    if not error <= TOLERANCE:
        return f"its training-mode forward differs from model.eval() by {error:.3g} (relative)"
    return None


def _eval_forward(work: nn.Module, args: tuple):
    modes = {module: module.training for module in work.modules()}
    try:
        return work.eval()(*args)
    finally:
        for module, training in modes.items():
            module.training = training


def _leaves(result: object) -> list[torch.Tensor]:
    if hasattr(result, "to_tuple"):  # transformers' ModelOutput
        result = result.to_tuple()
    found = torch.utils._pytree.tree_leaves(result)
    return [t for t in found if isinstance(t, torch.Tensor)]


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    if not got.is_floating_point():
        return 0.0 if torch.equal(got, want) else float("inf")
    if not got.numel():
        return 0.0
    got, want = got.double(), want.double()
    diff = (got - want).abs()
    diff[got.isnan() & want.isnan()] = 0.0  # NaN where eval has NaN too is no difference
    scale = max(float(want.nan_to_num().abs().max()), 1e-6)
    return float(diff.max()) / scale
