"""One error hierarchy for every public call.

Every message names the thing the user must fix (key path, layer, op, file) and what is valid.
Wrappers always chain the original exception with ``raise ... from e``.
"""

from __future__ import annotations


class QdqforgeError(Exception):
    """Base class of every error qdqforge raises on purpose."""


class InputDataError(QdqforgeError, TypeError):
    """``input_data`` is not a tensor or a tuple of tensors (also a ``TypeError``)."""


class ExportError(QdqforgeError):
    """The torch model could not be exported to ONNX."""


class GraphError(QdqforgeError):
    """An ONNX graph breaks an invariant (cycle, duplicate or dangling names, checker)."""


class UnsupportedOpsError(QdqforgeError):
    """The runtime has no converter for some ops; ``table`` lists all of them at once."""

    def __init__(self, message: str, table: list[dict] | None = None) -> None:
        super().__init__(message)
        self.table = table or []


class ConversionError(QdqforgeError):
    """A supported op could not be converted (bad attributes or inputs)."""


class PassError(QdqforgeError):
    """A graph pass failed; the message names the pass, its index and the earlier passes."""


class PreconditionError(PassError):
    """A pass was given a graph it cannot work on."""


class PostconditionError(PassError):
    """A pass left the graph in a state it promised not to."""


class NumericMismatchError(QdqforgeError):
    """Two stages of a model disagree beyond the allowed tolerance."""


class ConfigError(QdqforgeError, ValueError):
    """A quantization config (JSON or .cfg) is invalid; ``errors`` lists every violation."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [message]


class RecordError(QdqforgeError, ValueError):
    """A record file is malformed or does not match the model/config."""


class CalibrationError(QdqforgeError):
    """Calibration did not produce usable statistics (too few batches, NaN, zero range)."""


class QuantizationError(QdqforgeError):
    """A layer cannot be quantized as configured (e.g. int32 bias overflow)."""


class VerificationError(QdqforgeError):
    """The saved fake-quant/deploy models disagree with the torch model beyond the budget."""


class CheckpointError(QdqforgeError, ValueError):
    """A QAT checkpoint cannot be read or does not match the model built from the config."""


class OutputError(QdqforgeError, OSError):
    """An output file cannot be written (unwritable folder, a directory or file in the way)."""


class ModelError(QdqforgeError, TypeError):
    """A ``model`` argument is not the kind of module the call needs (names what it got)."""
