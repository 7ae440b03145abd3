"""The labelled training table: one row per person, the scorecard's characteristics computed by
``decisions.features.characteristics`` (the function the live decision calls) from what the
simulated providers return, plus the observed outcome ``bad``.

Every person is a new customer here (empty platform history), and ages are taken on a fixed
reference date, so the table is a pure function of the population file and the arguments.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from microloan.decisions.features import (
    CHARACTERISTICS,
    FLOAT_CHARACTERISTICS,
    PlatformHistory,
    characteristics,
)
from microloan.providers.simulated import SimulatedWorld
from microloan.sim.population import REFERENCE_DATE

NEW_CUSTOMER = PlatformHistory()


def schema() -> dict[str, pl.DataType]:
    """Column types of the training table: characteristics then ``bad``."""
    types: dict[str, pl.DataType] = {}
    for name, kind in CHARACTERISTICS.items():
        if kind == "categorical":
            types[name] = pl.Utf8()
        elif name in FLOAT_CHARACTERISTICS:
            types[name] = pl.Float64()
        else:
            types[name] = pl.Int64()
    types["bad"] = pl.Int8()
    return types


def training_table(
    world: SimulatedWorld, *, channel: str | None = None, on: date = REFERENCE_DATE
) -> pl.DataFrame:
    """Rows for everyone who has ``channel`` (applying through it), or for everyone through
    their primary channel when ``channel`` is ``None``."""
    primary = world.columns.values("primary_channel")
    bad = world.columns.ints("bad")
    rows: list[tuple[object, ...]] = []
    for row in world.rows(channel):
        values = characteristics(
            channel=channel or primary[row],
            age=world.age_at(row, on),
            report=world.report_at(row),
            activities=world.activities_at(row),
            history=NEW_CUSTOMER,
        )
        rows.append((*values.values(), bad.item(row)))
    return pl.DataFrame(rows, schema=schema(), orient="row")
