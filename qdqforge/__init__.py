"""qdqforge: AMCT-compatible INT8 quantization as ONNX graph rewriting.

``import qdqforge as amct`` runs AMCT-style code. The engine's building blocks are public too:
:func:`export` (torch -> ONNX), :func:`rewrite` (passes) and :func:`reimport` (ONNX -> trainable
torch.fx module).
"""

from qdqforge.front.analysis.auto_calibration import (
    accuracy_based_auto_calibration as accuracy_based_auto_calibration,
)
from qdqforge.front.analysis.doctor import analyze as analyze
from qdqforge.front.config.create import create_quant_config as create_quant_config
from qdqforge.front.config.create import (
    create_quant_retrain_config as create_quant_retrain_config,
)
from qdqforge.front.export.to_onnx import export as export
from qdqforge.front.ptq.preprocess import quantize_preprocess as quantize_preprocess
from qdqforge.front.ptq.quantize import quantize_model as quantize_model
from qdqforge.front.qat.freeze_bn import freeze_bn_stats as freeze_bn_stats
from qdqforge.front.qat.restore import restore_quant_retrain_model as restore_quant_retrain_model
from qdqforge.front.qat.retrain_model import (
    create_quant_retrain_model as create_quant_retrain_model,
)
from qdqforge.front.save.save_model import save_model as save_model
from qdqforge.front.save.save_retrain_model import (
    save_quant_retrain_model as save_quant_retrain_model,
)
from qdqforge.passes.infra.pipeline import rewrite as rewrite
from qdqforge.runtime import reimport as reimport

__version__ = "0.1.0"
