"""Deterministic repayment behaviour driven by pd_true."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from microloan.providers.simulated import SimulatedWorld
from microloan.sim.behaviour import default_date, repays_on_time

SINCE = date(2026, 1, 15)


def test_answers_are_deterministic(world: SimulatedWorld) -> None:
    person = world.person_at(0)
    due = [SINCE + timedelta(days=30 * k) for k in range(1, 13)]
    first = [repays_on_time(person, d, since=SINCE, seed=7) for d in due]
    again = [repays_on_time(person, d, since=SINCE, seed=7) for d in due]
    assert first == again


def test_a_defaulter_never_pays_again(world: SimulatedWorld) -> None:
    person = replace(world.person_at(0), pd_true=1.0)
    stops = default_date(person, since=SINCE, seed=3)
    assert stops is not None and SINCE <= stops < SINCE + timedelta(days=365)
    for k in range(13):
        due = stops + timedelta(days=30 * k)
        assert not repays_on_time(person, due, since=SINCE, seed=3)


def test_default_share_follows_pd_true(world: SimulatedWorld) -> None:
    people = [world.person_at(row) for row in range(2000)]
    defaults = sum(default_date(p, since=SINCE, seed=1) is not None for p in people)
    expected = sum(p.pd_true for p in people)
    assert abs(defaults - expected) < 4 * expected**0.5 + 5


def test_riskier_people_are_late_more_often(world: SimulatedWorld) -> None:
    person = world.person_at(1)
    safe, risky = replace(person, pd_true=0.001), replace(person, pd_true=0.6)
    due = [SINCE + timedelta(days=k) for k in range(1, 300)]
    late_safe = sum(not repays_on_time(safe, d, since=SINCE, seed=9) for d in due)
    late_risky = sum(not repays_on_time(risky, d, since=SINCE, seed=9) for d in due)
    assert late_risky > late_safe
