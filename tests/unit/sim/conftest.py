"""One small population per session: generating it takes a fraction of a second."""

from __future__ import annotations

import polars as pl
import pytest

from microloan.providers.simulated import SimulatedWorld
from microloan.sim.population import generate

SIZE = 4000
SEED = 11


@pytest.fixture(scope="session")
def frame() -> pl.DataFrame:
    return generate(SIZE, SEED)


@pytest.fixture(scope="session")
def world(frame: pl.DataFrame) -> SimulatedWorld:
    return SimulatedWorld(frame)


@pytest.fixture(scope="session")
def large_frame() -> pl.DataFrame:
    """Big enough for rates by quintile to be stable (about a second)."""
    return generate(60_000, 5)
