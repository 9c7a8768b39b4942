"""Silence the exporters' noise (never their errors) while one export runs.

Both torch exporters talk a lot: "torchvision is not installed" log lines, "exporting a model in
training mode" and "legacy TorchScript exporter" warnings, symbolic-shape dumps of the traced
graph. qdqforge exports in training mode on purpose (see :mod:`qdqforge.front.export.to_onnx`), so
these messages would only confuse users. Exceptions still propagate untouched.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

log = logging.getLogger(__name__)

_NOISY_LOGGERS = (
    "torch.onnx._internal.exporter._registration",  # "torchvision is not installed ..."
    "torch.onnx._internal.exporter._core",
    "torch.onnx._internal.exporter._capture_strategies",
    "torch.fx.experimental.symbolic_shapes",  # "Unable to find user code ..." on failure
    "torch._export",
    "torch.export",
    "onnx_ir",  # "Removed 74 unused nodes" at INFO
    "onnxscript",
)


@contextlib.contextmanager
def quiet_exporter() -> Iterator[list[warnings.WarningMessage]]:
    """Raise noisy torch loggers to ERROR, record warnings, capture stderr; restore all after.

    ``torch.export`` prints the partial fx graph to ``sys.stderr`` when it fails; that text is
    logged at DEBUG instead (the exception itself still propagates).

    Yields:
        The list that collects the warnings raised inside the block (TracerWarnings included),
        so the caller can turn the dangerous ones into errors.
    """
    saved = {}
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.setLevel(logging.ERROR)
    stderr, caught = io.StringIO(), []
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(stderr):
            warnings.simplefilter("always")
            yield caught
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        if stderr.getvalue().strip():
            log.debug("exporter stderr:\n%s", stderr.getvalue())
        for message in caught:
            log.debug("exporter warning: %s: %s", message.category.__name__, message.message)
