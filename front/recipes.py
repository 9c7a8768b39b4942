"""The named pass pipelines of every flow: one definition each, with the options their passes take.

    dmq_statistics      canonicalize -> fold_bn (do_fusion) -> dmq_observe
                        (quantize_preprocess; the doctor's DMQ factors)
    ptq_float_graph     canonicalize -> fold_bn (do_fusion) -> apply_balance
                        (the doctor's probe model; layer sensitivity)
    ptq_modified_graph  ptq_float_graph -> arq_weights
                        (quantize_model: the modified ONNX file)
    calibration         act_observe
                        (quantize_model, the doctor: IFMR/HFMG observers on each layer's input)
    qat_training        canonicalize -> qat_act_quant -> qat_weight_quant -> qat_search_n
                        (create_quant_retrain_model)
    adaround_weights    ada_weights (quantize_model's AdaRound step: the modified ONNX)
    calibrated_reference  act_quant (save_model's reference: the calibrated module)
    fake_quant_model    fake_quant        (the saved models, from a record: save_model and
    qdq_model           [opset_upgrade ->] insert_qdq            save_quant_retrain_model)
    deploy_model        [opset_upgrade ->] integer_layers -> insert_qdq
    qat_float_graph     qat_strip (save_quant_retrain_model), then qat_fold_bn: fold_bn

``fold_bn`` leaves the config's ``skip_fusion_layers`` unfolded; ``apply_balance`` multiplies
each DMQ layer by its ``tensor_balance_factor`` (``{}``: no DMQ layer, nothing changes). A
recipe is data (its name, pass names, per-pass options and :class:`PassContext`);
:meth:`Recipe.run` runs it, and results the passes hand on (``arq_weights``' weight scales and
AdaRound's float weights) are read from ``recipe.context.arq_weights``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import onnx

from qdqforge.front.config.ptq import QuantConfig
from qdqforge.front.config.qat import RetrainConfig
from qdqforge.front.record.dmq_factors import dmq_layers, recorded_balance_factors
from qdqforge.front.record.file import LayerRecord
from qdqforge.graph.ir import Graph
from qdqforge.passes.grids.act_grid import with_opset_upgrade
from qdqforge.passes.infra.base import PassContext
from qdqforge.passes.infra.pipeline import run_pipeline

log = logging.getLogger(__name__)

Factors = Mapping[str, Sequence[float]]
Records = Mapping[str, LayerRecord]


@dataclass(frozen=True)
class Recipe:
    """A named pass list, its passes' options by pass name and the context (config) it runs with."""

    name: str
    passes: tuple[str, ...]
    context: PassContext
    options: Mapping[str, Mapping] = field(default_factory=dict)

    def run(self, model: onnx.ModelProto | Graph | str, *, consume: bool = False) -> Graph:
        """The graph after every pass of the recipe (``model`` itself is not changed, except a
        Graph given with ``consume=True``: rewritten in place, see ``run_pipeline``)."""
        log.debug("recipe %s: %s", self.name, " -> ".join(self.passes))
        result = run_pipeline(
            model, self.passes, ctx=self.context, options=self.options, consume=consume
        )
        return result.graph


def dmq_statistics(config: QuantConfig) -> Recipe:
    """The float graph with a DMQ observer (running ``max |X|``) on each DMQ layer's input."""
    options = {"fold_bn": _fold_bn_options(config)}
    passes = ("canonicalize", *_fusion(config), "dmq_observe")
    return Recipe("dmq_statistics", passes, PassContext(config=config), options)


def ptq_float_graph(config: QuantConfig, factors: Factors) -> Recipe:
    """The modified ONNX before ARQ: BN folded, DMQ ``factors`` applied, weights still float."""
    passes = ("canonicalize", *_fusion(config), "apply_balance")
    return Recipe(
        "ptq_float_graph", passes, PassContext(config=config), _ptq_options(config, factors)
    )


def ptq_modified_graph(config: QuantConfig, factors: Factors) -> Recipe:
    """:func:`ptq_float_graph` with ARQ weights: the modified ONNX ``quantize_model`` writes.

    ``arq_weights`` leaves each layer's weight scales in ``context.arq_weights.scale_w``.
    """
    float_graph = ptq_float_graph(config, factors)
    passes = (*float_graph.passes, "arq_weights")
    return Recipe("ptq_modified_graph", passes, float_graph.context, float_graph.options)


def calibration(config: QuantConfig) -> Recipe:
    """An activation observer (IFMR or HFMG, per the config) on each enabled layer's input."""
    return Recipe("calibration", ("act_observe",), PassContext(config=config))


def qat_training(config: RetrainConfig) -> Recipe:
    """ULQ on each retrained layer's input, ARQ/ULQ retrain on its weight, search-N after it.

    BatchNormalization stays in the graph (folded only when the QAT model is saved).
    """
    passes = ("canonicalize", "qat_act_quant", "qat_weight_quant", "qat_search_n")
    return Recipe("qat_training", passes, PassContext(config=config))


def recorded_factors(config: QuantConfig, record_file) -> dict[str, tuple[float, ...]]:
    """The record's ``tensor_balance_factor`` of each DMQ layer (``{}`` without DMQ layers).

    Raises:
        RecordError: a DMQ layer has no recorded factors.
    """
    return recorded_balance_factors(record_file, config) if dmq_layers(config) else {}


def _fusion(config: QuantConfig) -> tuple[str, ...]:
    return ("fold_bn",) if config.do_fusion else ()


def _fold_bn_options(config: QuantConfig) -> dict:
    return {"skip_layers": list(config.skip_fusion_layers)}


def _ptq_options(config: QuantConfig, factors: Factors) -> dict:
    return {"fold_bn": _fold_bn_options(config), "apply_balance": {"factors": factors}}


def adaround_weights(weights: Mapping[str, object]) -> Recipe:
    """AdaRound's rounded weights (``{layer: array}``) in place of ARQ's in the modified ONNX."""
    return Recipe(
        "adaround_weights", ("ada_weights",), PassContext(), {"ada_weights": {"weights": weights}}
    )


def calibrated_reference(records: Records) -> Recipe:
    """The calibration module after calibration: each recorded layer's activation quantizer."""
    return Recipe(
        "calibrated_reference", ("act_quant",), PassContext(), _records("act_quant", records)
    )


def fake_quant_model(records: Records) -> Recipe:
    """The saved fake-quant model: each recorded layer's quantization in plain float ops."""
    return Recipe(
        "fake_quant_model", ("fake_quant",), PassContext(), _records("fake_quant", records)
    )


def qdq_model(records: Records) -> Recipe:
    """The saved QDQ model: int8 weights, int32 bias, activation Q/DQ (opset 21 for int16)."""
    passes = with_opset_upgrade(records, ("insert_qdq",))
    return Recipe("qdq_model", passes, PassContext(), _records("insert_qdq", records))


def deploy_model(integer: Records, rest: Records) -> Recipe:
    """The saved deploy model: ``integer`` layers on integers, the ``rest`` as QDQ."""
    passes = with_opset_upgrade({**integer, **rest}, ("integer_layers", "insert_qdq"))
    options = {**_records("integer_layers", integer), **_records("insert_qdq", rest)}
    return Recipe("deploy_model", passes, PassContext(), options)


def qat_float_graph() -> Recipe:
    """A trained QAT graph without its QAT nodes (``save_quant_retrain_model``, then fold_bn)."""
    return Recipe("qat_float_graph", ("qat_strip",), PassContext())


def qat_fold_bn() -> Recipe:
    """Every BatchNormalization folded into its layer (the saved QAT models)."""
    return Recipe("qat_fold_bn", ("fold_bn",), PassContext())


def _records(pass_name: str, records: Records) -> dict:
    return {pass_name: {"records": records}}
