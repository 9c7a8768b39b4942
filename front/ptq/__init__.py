"""The PTQ flow: ``quantize_preprocess``, ``quantize_model``, its calibration module, AdaRound."""
