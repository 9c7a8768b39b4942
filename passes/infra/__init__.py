"""The pass contract, registry, manager and named pipelines."""
