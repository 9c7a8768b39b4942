"""The calibrated base artefacts of the reliability tests, built once per session."""

from __future__ import annotations

import pytest

from tests.reliability.world import World, build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    return build_world(tmp_path_factory.mktemp("reliability_base"))
