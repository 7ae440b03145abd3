"""Integration fixtures: a fresh, migrated database per platform, on SQLite and on PostgreSQL.

``platform`` is one fresh database; ``make_platform`` makes more of them in one test (to run a
scenario twice and compare the books). Both are parametrised over ``backend``; a module that
needs only one backend overrides the ``backend`` fixture.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from microloan.service.platform import Platform

from .support import MakePlatform


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_platform(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, wall_clock: Callable[[], datetime]
) -> Iterator[MakePlatform]:
    made: list[tuple[Platform, str | None]] = []
    if backend == "postgres":
        server = request.getfixturevalue("postgres_server")
        server.require()
        pg_template: str = request.getfixturevalue("postgres_template")
    else:
        sqlite_template = request.getfixturevalue("sqlite_template")

    def make(*, pool_size: int = 5) -> Platform:
        if backend == "postgres":
            name = f"microloan_t_{uuid.uuid4().hex[:8]}"
            server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
            p = Platform.connect(server.url_for(name), now=wall_clock, pool_size=pool_size)
            made.append((p, name))
        else:
            url = sqlite_template.copy_to(tmp_path / f"microloan-{len(made)}.sqlite3")
            p = Platform.connect(url, now=wall_clock)
            made.append((p, None))
        return p

    yield make
    for p, name in made:
        p.dispose()
        if name is not None:
            server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def platform(make_platform: MakePlatform) -> Platform:
    return make_platform()
