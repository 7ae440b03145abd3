"""One small simulated world per session."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from microloan.providers.simulated import SimulatedWorld
from microloan.sim import population


@pytest.fixture(scope="session")
def frame() -> pl.DataFrame:
    return population.generate(3000, 21)


@pytest.fixture(scope="session")
def population_file(frame: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return population.write(frame, tmp_path_factory.mktemp("world") / "population.parquet")


@pytest.fixture(scope="session")
def world(population_file: Path) -> SimulatedWorld:
    return SimulatedWorld.load(population_file)
