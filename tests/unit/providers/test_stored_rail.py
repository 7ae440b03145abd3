"""The stored simulated rail keeps the rail's contract with its transfers in a table: idempotent
keys, failures with reasons, timeouts resolved by lookup, a statement per business date, no card
number in the table, and one transfer when two callers race with one key."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from microloan.providers.ports import ProviderError
from microloan.providers.rail import (
    NO_RAIL_FAULTS,
    CallFault,
    PaymentRailPort,
    RailFaults,
    TransferKind,
    TransferStatus,
    call_fault,
)
from microloan.providers.stored_rail import StoredRail
from microloan.store.db import make_engine
from microloan.store.schema import metadata, sim_rail_transfer

CARD = "6222020000123456789"
DAY = date(2026, 11, 23)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    made = make_engine(f"sqlite:///{tmp_path / 'rail.sqlite3'}")
    metadata.create_all(made, tables=[sim_rail_transfer])
    yield made
    made.dispose()


def rail(engine: sa.Engine, faults: RailFaults = NO_RAIL_FAULTS, **kw: object) -> StoredRail:
    return StoredRail(
        engine,
        today=lambda: DAY,
        now=lambda: datetime(2026, 11, 23, 2, tzinfo=UTC),
        card_ref=lambda number: f"ref-{number[-4:]}",
        faults=faults,
        sleep=lambda _s: None,
        **kw,  # type: ignore[arg-type]
    )


def stored(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(sim_rail_transfer))]


def test_it_is_a_payment_rail(engine: sa.Engine) -> None:
    r = rail(engine)
    assert isinstance(r, PaymentRailPort)
    with pytest.raises(ProviderError) as err:
        r.verify_holder(CARD, "张伟", "x", "1")  # no holder verification configured
    assert err.value.code == "provider.rail.unavailable"


def test_the_same_key_never_moves_money_twice_and_no_card_number_is_stored(
    engine: sa.Engine,
) -> None:
    r = rail(engine)
    first = r.disburse("draw-1", CARD, 100_000)
    assert (first.status, first.kind, first.card_number) == (
        TransferStatus.SUCCEEDED,
        TransferKind.DISBURSE,
        "ref-6789",
    )
    assert first.rail_ref.startswith("SIM")
    assert r.disburse("draw-1", CARD, 100_000) == first
    assert rail(engine).lookup("draw-1") == first  # another process sees the same rail
    assert r.statement(DAY) == [first]
    for wrong in (lambda: r.disburse("draw-1", CARD, 100_001), lambda: r.debit("draw-1", CARD, 1)):
        with pytest.raises(ProviderError) as err:
            wrong()
        assert err.value.code == "provider.rail.key_conflict"
    assert len(stored(engine)) == 1
    assert all(CARD not in str(v) for row in stored(engine) for v in row)


def test_declined_cards_and_seeded_failures_answer_with_a_reason(engine: sa.Engine) -> None:
    t = rail(engine, declined_cards=frozenset({CARD})).debit("ad-1", CARD, 5_000)
    assert (t.status, t.reason) == (TransferStatus.FAILED, "declined")
    flaky = rail(engine, RailFaults(failure_rate=0.5, seed=3))
    results = [flaky.debit(f"k{i}", CARD, 100).status for i in range(100)]
    assert 25 < results.count(TransferStatus.FAILED) < 75
    assert [rail(engine).lookup(f"k{i}").status for i in range(100)] == results  # type: ignore[union-attr]


def test_timeouts_follow_the_seed_and_are_resolved_by_lookup(engine: sa.Engine) -> None:
    faults = RailFaults(timeout_rate=1.0, seed=1)
    r = rail(engine, faults)
    fates = {"lost": 0, "late": 0}
    for i in range(60):
        key = f"draw-{i}"
        with pytest.raises(ProviderError) as err:
            r.disburse(key, CARD, 10_000)
        assert err.value.code == "provider.rail.timeout"
        fate = call_fault(faults, key, 1)
        assert (r.lookup(key) is not None) == (fate is CallFault.LATE)
        fates[fate.value] += 1
    assert fates["lost"] > 10 and fates["late"] > 10
    r.faults = NO_RAIL_FAULTS  # the rail answers again: the same keys move money once each
    for i in range(60):
        r.disburse(f"draw-{i}", CARD, 10_000)
    assert len(r.statement(DAY)) == 60 and r.statement(date(2026, 11, 24)) == []


def test_two_callers_racing_with_one_key_make_one_transfer(engine: sa.Engine) -> None:
    answers: list[object] = []
    barrier = threading.Barrier(4)

    def call() -> None:
        barrier.wait()
        answers.append(rail(engine).disburse("same", CARD, 7_000))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 4 and all(a == answers[0] for a in answers)
    assert len(stored(engine)) == 1


def test_a_transfer_moves_a_positive_amount(engine: sa.Engine) -> None:
    with pytest.raises(ProviderError) as err:
        rail(engine).debit("k", CARD, 0)
    assert err.value.code == "provider.rail.invalid"
