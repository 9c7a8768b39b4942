"""What every public entry point does first: normalize and check ``input_data`` and the model."""
