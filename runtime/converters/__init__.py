"""ONNX -> torch.fx converters, one module per op family.

Importing this package registers every converter; the list of families is explicit on purpose.
"""

from __future__ import annotations
