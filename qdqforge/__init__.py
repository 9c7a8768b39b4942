"""qdqforge."""

from qdqforge.front.config.create import create_quant_config as create_quant_config
from qdqforge.front.config.create import (
    create_quant_retrain_config as create_quant_retrain_config,
)
from qdqforge.front.export import export as export
