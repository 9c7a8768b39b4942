"""16-bit activations in a PTQ config (AMCT's A16W8), and where they are refused.

A layer's activations are 8 or 16 bits: ``activation_quant_params.num_bits`` in the JSON,
``dst_type: INT8 | INT16`` of ``ifmr_quantize``/``hfmg_quantize`` in the ``.cfg``. 16 bits put
the layer input on ``[-32768, 32767]``: a step ``(max - min) / 65535``, 257 times finer than
int8's over the same range, so the rounding MSE ``s^2 / 12`` drops about 66,000 times.
Refused where it makes no sense:

* with weights of other than 8 bits: AMCT's allowed activation/weight combinations are A8W8,
  A16W8, A8W4 and A4W4 (docs/amct.md §2.3); there is no A16W4/W6/W7;
* with ``fakequant_precision_mode: FORCE_FP16_QUANT``: float16 holds integers exactly only up
  to 2048, so an int16 grid cannot be fake-quantized in it.
"""

from __future__ import annotations

from qdqforge.front.config.issues import Issues, join

ACT_BITS = (8, 16)
DST_TYPE_BITS = {"INT8": 8, "INT16": 16}
A16_WEIGHT_BITS = 8
FP16_MODE = "FORCE_FP16_QUANT"


def check_a16w8(
    path: str, act_bits: int, weight_bits: int | None, issues: Issues, cfg: bool = False
) -> None:
    """Record 16-bit activations paired with weights of other than 8 bits.

    ``path`` names the activation key; ``cfg`` shows values as ``.cfg`` ``dst_type`` names.
    """
    if act_bits == 16 and weight_bits is not None and weight_bits != A16_WEIGHT_BITS:
        why = f"with {weight_bits}-bit weights (16-bit activations need 8-bit weights: A16W8)"
        issues.add(path, _shown(act_bits, cfg), f"{_shown(8, cfg)} {why}")


def check_fp16_mode(
    path: str, act_bits: int, mode: str | None, issues: Issues, cfg: bool = False
) -> None:
    """Record 16-bit activations under ``FORCE_FP16_QUANT`` (``path``: the activation key)."""
    if act_bits == 16 and mode == FP16_MODE:
        why = f"under fakequant_precision_mode {FP16_MODE} (float16 is exact only up to 2048)"
        issues.add(path, _shown(act_bits, cfg), f"{_shown(8, cfg)} {why}")


def _shown(bits: int, cfg: bool) -> int | str:
    return f"INT{bits}" if cfg else bits


def check_layers(config, issues: Issues) -> None:
    """Both rules for every layer of a parsed ``QuantConfig`` (JSON key paths)."""
    for layer in config.layers:
        bits = layer.activation_quant_params.num_bits
        path = join(layer.name, "activation_quant_params.num_bits")
        weights = layer.weight_quant_params
        check_a16w8(path, bits, None if weights is None else weights.num_bits, issues)
        check_fp16_mode(path, bits, config.fakequant_precision_mode, issues)
