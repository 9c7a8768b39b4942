"""Scale/offset record files: their format, and checks of what a record means for a model."""
