"""qdqforge: AMCT-compatible INT8 quantization as ONNX graph rewriting.

``import qdqforge as amct`` runs AMCT-style code. The engine's building blocks are public too:
:func:`export` (torch -> ONNX), :func:`rewrite` (passes) and :func:`reimport` (ONNX -> trainable
torch.fx module).
"""

from qdqforge.front.auto_calibration import (
    accuracy_based_auto_calibration as accuracy_based_auto_calibration,
)
from qdqforge.front.config.create import create_quant_config as create_quant_config
from qdqforge.front.config.create import (
    create_quant_retrain_config as create_quant_retrain_config,
)
from qdqforge.front.doctor import analyze as analyze
from qdqforge.front.export import export as export
from qdqforge.front.ptq_model import quantize_model as quantize_model
from qdqforge.front.ptq_preprocess import quantize_preprocess as quantize_preprocess
from qdqforge.front.ptq_save import save_model as save_model
from qdqforge.front.qat_bn import freeze_bn_stats as freeze_bn_stats
from qdqforge.front.qat_model import create_quant_retrain_model as create_quant_retrain_model
from qdqforge.front.qat_restore import restore_quant_retrain_model as restore_quant_retrain_model
from qdqforge.front.qat_save import save_quant_retrain_model as save_quant_retrain_model
from qdqforge.passes.pipeline import rewrite as rewrite
from qdqforge.runtime import reimport as reimport

__version__ = "0.1.0"
