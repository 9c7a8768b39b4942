"""Import timm and transformers beside the CPU torch 2.13.0 (test and bench only; the product
never imports either).

Both import torchvision (timm at import, transformers when a model class is first used). The
registry's torchvision 0.28.0 (the release built for torch 2.13.0) is a CUDA build: its
``_C.so`` links ``libtorch_cuda.so``, which the CPU torch does not ship, so
``torchvision.extension`` fails to load it and carries on without its C++ ops (nms, roi_align,
deform_conv2d, ...). torchvision guards every registration of those ops on ``_has_ops()`` except
two, ``register_fake("torchvision::nms")`` and ``("torchvision::qnms")`` in
``torchvision/_meta_registrations.py``, which then raise "operator torchvision::nms does not
exist" and abort the import. :func:`import_torchvision` declares those two schemas (with the
signatures of torchvision's C++ ``TORCH_LIBRARY`` block) and imports again. Only the schemas are
declared: calling ``torchvision.ops.nms`` still raises "no kernel", which none of the zoo models
do. Where torchvision imports by itself (a CPU build, or a CUDA torch), nothing is declared.
"""

from __future__ import annotations

import logging
import sys
from types import ModuleType

import torch

log = logging.getLogger(__name__)

MISSING_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_LIBRARIES: list[torch.library.Library] = []  # a Library's registrations live as long as it does


def _forget_torchvision() -> None:
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]


def declare_torchvision_schemas() -> None:
    """Declare the two torchvision op schemas its Python code registers fake kernels for."""
    if _LIBRARIES:
        return
    lib = torch.library.Library("torchvision", "DEF")
    for schema in MISSING_SCHEMAS:
        lib.define(schema)
    _LIBRARIES.append(lib)
    log.info("declared torchvision schemas without kernels: %s", ", ".join(MISSING_SCHEMAS))


def import_torchvision() -> ModuleType:
    """``import torchvision``; declares the missing op schemas first when its C++ ops can't load."""
    try:
        import torchvision
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
        _forget_torchvision()
        declare_torchvision_schemas()
        import torchvision
    return torchvision


def import_timm() -> ModuleType:
    """``import timm`` on a CPU torch whose registry torchvision has CUDA-only C++ ops."""
    import_torchvision()
    import timm

    return timm


def import_transformers() -> ModuleType:
    """``import transformers`` with torchvision importable (its image utilities import it)."""
    import_torchvision()
    import transformers

    return transformers
