"""ONNX -> torch.fx converters, one module per op family.

Importing this package registers every converter; the list of families is explicit on purpose.
"""

from __future__ import annotations

from qdqforge.runtime.converters import (  # noqa: F401  (imported to register)
    activation,
    constant,
    conv,
    dropout,
    elementwise,
    gather,
    gemm,
    logic,
    norm,
    pad,
    pool,
    qdqforge_act_quant,
    qdqforge_observers,
    qdqforge_qat,
    quant,
    reduce,
    resize,
    scatter,
    select,
    sequence,
    shape,
    tensor,
)
