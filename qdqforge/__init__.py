"""qdqforge."""
