"""The QAT flow: ``create_quant_retrain_model``, ``restore_quant_retrain_model``, QAT records."""
