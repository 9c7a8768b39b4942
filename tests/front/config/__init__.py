"""Tests of qdqforge.front.config: JSON and .cfg configs, layer discovery, golden files."""
