"""The doctor's instrumented model: the PTQ float graph, reimported once, with per-layer switches.

    export -> canonicalize -> fold_bn (do_fusion) -> apply_balance (DMQ factors) -> act_observe
    -> reimport -> one float forward (IFMR/HFMG calibrate every layer on ``input_data``)
    -> each ActObserverOp swapped for an ActivationProbe; each weight gets a WeightSwitch (ARQ)

This is the graph ``quantize_model`` builds, minus the ARQ weights written into it, so any mix
of "this layer's activation quantized" / "this layer's weight quantized" is one forward away:
the quantized everything-on run is the fake-quant model (its bias stays float: the saved
model's int32 bias differs by at most half a step of ``s_d * s_w``). DMQ factors and
``scale_d``/``offset_d`` come from the record where it has them (on its ``act_type`` grid, 8 or
16 bits), else from ``input_data`` (on the config's ``num_bits``). An enabled MatMul between two
activations (``<module>.matmul_<k>``, two quantized inputs) has no probe yet: a ConfigError
names it before anything is calibrated.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection

import numpy as np
import onnx
import torch

from qdqforge.errors import ConfigError
from qdqforge.front.analysis.doctor.dmq_factors import balance_factors_for
from qdqforge.front.analysis.doctor.probes import ActivationProbe, WeightSwitch
from qdqforge.front.analysis.sensitivity_metrics import flatten_outputs
from qdqforge.front.config.ptq import QuantConfig
from qdqforge.front.record.file import LayerRecord
from qdqforge.graph import io
from qdqforge.graph.activation_matmul import activation_matmul_site
from qdqforge.graph.ir import Graph
from qdqforge.graph.layers import WEIGHT_AXIS, LayerSite, layer_site
from qdqforge.passes.grids.act_grid import act_bits
from qdqforge.passes.infra.base import PassContext
from qdqforge.passes.infra.pipeline import run_pipeline
from qdqforge.runtime import ReimportedModule, reimport
from qdqforge.runtime.converters.qdqforge_observers import ActObserverOp
from qdqforge.runtime.kernels.arq import arq_quantize

log = logging.getLogger(__name__)


class ProbeModel:
    """Runs the model with any set of layers' activations and/or weights fake-quantized.

    Attributes:
        module: the reimported float graph with the switches in place.
        probes: ``{layer: ActivationProbe}`` of every analyzed layer, in config order.
        weights: ``{layer: WeightSwitch}`` of the analyzed layers that have a weight.
        scale_w: ``{layer: ARQ weight scales}``.
        factors: ``{layer: DMQ balance factors}`` applied (DMQ layers only).
    """

    def __init__(self, module: ReimportedModule, inputs: tuple, probes, weights, scale_w, factors):
        self.module, self.inputs = module, inputs
        self.probes: dict[str, ActivationProbe] = probes
        self.weights: dict[str, WeightSwitch] = weights
        self.scale_w: dict[str, tuple[float, ...]] = scale_w
        self.factors: dict[str, np.ndarray] = factors

    @property
    def layers(self) -> list[str]:
        """Analyzed layers, in config order."""
        return list(self.probes)

    def run(
        self, activations: Collection[str] = (), weights: Collection[str] = (), observe=False
    ) -> np.ndarray:
        """Outputs (flattened, float64) with the named layers' activations/weights quantized."""
        for name, probe in self.probes.items():
            probe.quantize, probe.observe = name in activations, observe
        for name, switch in self.weights.items():
            switch.set(name in weights)
        with torch.no_grad():
            out = self.module(*self.inputs)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return flatten_outputs([o.detach().cpu().numpy() for o in outs])


def build_probe_model(
    proto: onnx.ModelProto, inputs: tuple, config: QuantConfig, records: dict[str, LayerRecord]
) -> ProbeModel:
    """Build and calibrate the :class:`ProbeModel` of ``proto`` (module docstring).

    Args:
        proto: the exported float model.
        inputs: ``input_data`` as a tuple of tensors (calibration and analysis batch).
        config: the validated PTQ config; its enabled layers are analyzed.
        records: record entries (possibly empty) whose factors and scales take precedence.
    """
    calib = dataclasses.replace(config, batch_num=1)
    factors = balance_factors_for(proto, inputs, calib, records)
    fusion = ("fold_bn",) if config.do_fusion else ()
    options = {
        "fold_bn": {"skip_layers": list(config.skip_fusion_layers)},
        "apply_balance": {"factors": factors},
    }
    passes = ("canonicalize", *fusion, "apply_balance")
    graph = run_pipeline(proto, passes, ctx=PassContext(config=calib), options=options).graph
    sites = _sites(graph, config)
    observed = run_pipeline(graph, ("act_observe",), ctx=PassContext(config=calib)).graph
    module = reimport(io.to_proto(observed)).eval()
    with torch.no_grad():
        module(*inputs)  # the observers calibrate on this float forward (batch_num=1)
    probes = _swap_observers(module, config, records, sites)
    weights, scale_w = _weight_switches(module, sites, config)
    arrays = {k: np.asarray(v, np.float64) for k, v in factors.items()}
    return ProbeModel(module, inputs, probes, weights, scale_w, arrays)


def _sites(graph: Graph, config: QuantConfig) -> dict[str, LayerSite]:
    sites = {}
    for layer in config.layers:
        site = layer_site(graph, layer.name) if layer.quant_enable else None
        if site is not None:
            sites[layer.name] = site
        elif layer.quant_enable and activation_matmul_site(graph, layer.name) is not None:
            raise ConfigError(
                f"layer '{layer.name}': the doctor does not probe MatMuls between two "
                "activations yet (quantize_model does); set its quant_enable to false in the "
                "config given to analyze"
            )
    return sites


def _swap_observers(module, config: QuantConfig, records, sites) -> dict[str, ActivationProbe]:
    found = {}
    for path, op in list(module.named_modules()):
        if isinstance(op, ActObserverOp):
            rec = records.get(op.layer)
            scale, offset, bits = op.params.scale, op.params.offset, op.num_bits
            if rec is not None and rec.scale_d is not None and rec.offset_d is not None:
                scale, offset, bits = rec.scale_d, rec.offset_d, act_bits(rec)
            probe = ActivationProbe(op.layer, sites[op.layer].channel_axis, scale, offset, bits)
            owner, _, leaf = path.rpartition(".")
            module.get_submodule(owner).add_module(leaf, probe)
            found[op.layer] = probe
    return {name: found[name] for name in config.layer_names if name in found}


def _weight_switches(module: ReimportedModule, sites: dict[str, LayerSite], config: QuantConfig):
    switches, scales = {}, {}
    for name, site in sites.items():
        params = config.layer(name).weight_quant_params
        path = module.onnx_mapping.get(site.weight.name) if site.weight is not None else None
        if params is None or path is None:
            if site.weight is not None:
                log.warning("layer '%s': weight %s is not a module tensor", name, site.weight.name)
            continue
        owner, _, leaf = path.rpartition(".")
        tensor = getattr(module.get_submodule(owner), leaf)
        axis = WEIGHT_AXIS[site.weight_layout]
        groups = site.groups if site.weight_layout == "ConvTranspose" else 1
        bits, per_channel = config.weight_bits(config.layer(name)), params.channel_wise
        arq = arq_quantize(tensor.detach(), bits, per_channel, axis, groups, name)
        switches[name] = WeightSwitch(tensor, arq.weight)
        scales[name] = tuple(float(s) for s in arq.scale.tolist())
    return switches, scales
