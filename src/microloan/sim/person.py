"""One person of the synthetic population as a record: identity, card, channels, device, and
the hidden truth (creditworthiness, ``pd_true``, ``bad``, fraud ring) the simulation runs on.

Provider answers (credit report, channel activity, device, location) are not here: they come
through the simulated adapters, as they would from real providers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from typing import Any, Literal

from microloan.sim.signals import CHANNELS


@dataclass(frozen=True, slots=True)
class Person:
    person_id: int
    name: str
    sex: Literal["M", "F"]
    ethnicity: str
    birth_date: date
    id_number: str
    address: str  # as printed on the ID card (the place the card was issued)
    id_issuer: str
    id_valid_from: date
    id_valid_until: date | None  # None: long-term
    phone: str
    card_number: str
    bank_code: str
    home_region_code: str  # where the person lives now
    home_city: str
    home_lat: float
    home_lon: float
    primary_channel: str
    wechat_open_id: str | None
    qq_open_id: str | None
    device_id: str
    blocked: bool
    # hidden truth: never shown to the decision, only to the simulation and its tests
    creditworthiness: float
    pd_true: float
    bad: bool
    fraud_ring: int | None
    income_monthly_fen: int

    def open_id(self, channel: str) -> str | None:
        assert channel in CHANNELS, channel
        value: str | None = getattr(self, f"{channel}_open_id")
        return value

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels this person has, the primary first."""
        others = tuple(c for c in CHANNELS if c != self.primary_channel and self.open_id(c))
        return (self.primary_channel, *others)

    def age_on(self, on: date) -> int:
        had_birthday = (on.month, on.day) >= (self.birth_date.month, self.birth_date.day)
        return on.year - self.birth_date.year - (0 if had_birthday else 1)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Person:
        """From a population row (``frame.row(i, named=True)``); extra columns are ignored."""
        values = {f.name: row[f.name] for f in fields(cls)}
        values["bad"] = bool(values["bad"])
        return cls(**values)


PERSON_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Person))
