"""AdaRound in the ``quantize_model`` calibration module (``wts_algo: "ada_quantize"``).

Where it runs: the rounding needs each layer's inputs, which only the calibration forwards see.
During the first ``batch_num`` forwards a hook on each AdaRound layer's activation observer
feeds the layer's input (float activations, earlier layers on ARQ weights: AMCT's calibration
model, docs/amct.md §4.1) to a
:class:`~qdqforge.runtime.calibration.layer_gram.GramAccumulator`: memory
``groups * K^2`` per layer whatever the number of batches. When the last observer is done,
before ``scale_d``/``offset_d`` are written, :class:`AdaRoundStep`

1. learns every layer's rounding (``kernels.adaround``, ``num_iteration`` Adam steps; a tqdm
   bar over all steps, off when stderr is not a TTY or ``QDQFORGE_PROGRESS=0``; one INFO log
   line per layer with the integers moved and the reconstruction error before/after);
2. writes ``s * q`` into the calibration module's weight, so later (fake-quantized) forwards
   run what ``save_model`` writes;
3. rewrites the modified ONNX file with the ``ada_weights`` pass (atomically), then drops the
   Grams and float weights.

The record's ``scale_w``/``offset_w`` are ARQ's and stay; ``save_model`` reads the integers as
``rint(W / s)`` from the modified ONNX, so both saved models carry the AdaRound integers. A
failure here leaves the record without ``scale_d``: ``save_model`` refuses it.
"""

from __future__ import annotations

import logging
import os
import time

import torch
from torch import nn
from tqdm import tqdm

from qdqforge.errors import CalibrationError, ConfigError
from qdqforge.front.ptq.ada_sites import AdaLayer
from qdqforge.front.ptq.calibration import progress_disabled
from qdqforge.front.recipes import adaround_weights
from qdqforge.graph import io
from qdqforge.runtime import distributed
from qdqforge.runtime.calibration.adaround import adaround
from qdqforge.runtime.converters.qdqforge_observers import ActObserverOp
from qdqforge.runtime.kernels.arq import from_channel_major, to_channel_major

log = logging.getLogger(__name__)


class AdaRoundStep:
    """Collects AdaRound layers' inputs during calibration; rounds and writes when called.

    Args:
        layers: the ``ada_quantize`` layers (``front.ada_sites.ada_layers``).
        onnx_file: the modified ONNX ``quantize_model`` wrote.
    """

    def __init__(self, layers: list[AdaLayer], onnx_file: str | os.PathLike) -> None:
        self.layers = {layer.name: layer for layer in layers}
        self.onnx_file = onnx_file

    def attach(self, module: nn.Module) -> None:
        """Hook the activation observer of every AdaRound layer of ``module``.

        Raises:
            ConfigError: ``torch.distributed`` is initialized with several ranks (the layers'
                input statistics are not merged across ranks).
        """
        if distributed.active():
            raise ConfigError(
                f"ada_quantize layers ({', '.join(self.layers)}) cannot calibrate across "
                "processes: AdaRound's input statistics are not merged over ranks; run "
                "quantize_model in one process, or use arq_quantize for these layers"
            )
        for op in module.modules():
            if isinstance(op, ActObserverOp) and op.layer in self.layers:
                op.register_forward_hook(self._collect)

    def _collect(self, op: ActObserverOp, args: tuple, output) -> None:
        layer = self.layers.get(op.layer)  # None once rounded
        if layer is not None and op.batches > layer.batches:  # a forward the observer used
            layer.gram.update(args[0])
            layer.batches = op.batches

    def __call__(self, module: nn.Module) -> None:
        """Round every layer, update ``module``'s weights, rewrite the modified ONNX."""
        total = sum(layer.params.num_iteration for layer in self.layers.values())
        bar = tqdm(total=total, desc="adaround", unit="step", disable=progress_disabled())
        weights = {}
        with bar:
            for layer in self.layers.values():
                weights[layer.name] = _round_layer(layer, bar.update)
                _set_module_weight(module, layer.constant, weights[layer.name])
        arrays = {k: w.cpu().numpy() for k, w in weights.items()}
        io.save(adaround_weights(arrays).run(self.onnx_file), self.onnx_file)
        self.layers.clear()  # the Grams and float weights are no longer needed


def _round_layer(layer: AdaLayer, on_steps) -> torch.Tensor:
    if layer.gram.rows == 0:
        raise CalibrationError(
            f"layer '{layer.name}': ada_quantize saw none of its calibration inputs; is its "
            "observer in the calibration module?"
        )
    start = time.perf_counter()
    m = to_channel_major(layer.weight.float(), layer.axis, layer.groups)
    result = adaround(m, layer.scale, layer.gram.factor(), layer.gram.rows, layer.params, on_steps)
    ratio = result.loss_adaround / result.loss_nearest if result.loss_nearest > 0 else 1.0
    log.info(
        "adaround %s: %d of %d integers moved from round-to-nearest, output error %.3g -> "
        "%.3g (%.2fx) on %d input rows, %.1f s",
        layer.name, result.changed, m.numel(), result.loss_nearest, result.loss_adaround,
        ratio, layer.gram.rows, time.perf_counter() - start,
    )  # fmt: skip
    weight = from_channel_major(result.weight, layer.weight.shape, layer.axis, layer.groups)
    return weight.to(layer.weight.dtype)


def _set_module_weight(module: nn.Module, constant: str, weight) -> None:
    path = module.onnx_mapping[constant]
    owner_path, _, leaf = path.rpartition(".")
    tensor = getattr(module.get_submodule(owner_path) if owner_path else module, leaf)
    with torch.no_grad():
        tensor.copy_(weight.to(tensor))
