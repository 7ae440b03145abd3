"""The simulated payment rail keeps the rail's contract: idempotent keys, failures with reasons,
timeouts resolved by lookup (never by paying twice), and a statement per business date."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from microloan.providers.ports import HolderCheck, ProviderError
from microloan.providers.rail import (
    NO_RAIL_FAULTS,
    PaymentRailPort,
    RailFaults,
    SimulatedRail,
    TransferKind,
    TransferStatus,
)

CARD = "6222020000123456789"
DAY = date(2026, 11, 23)


class Holders:
    def verify_holder(self, card_number: str, name: str, id_number: str, phone: str) -> HolderCheck:
        return HolderCheck(card_number == CARD, "ok" if card_number == CARD else "card.unknown")


def rail(faults: RailFaults = NO_RAIL_FAULTS, **kw: object) -> SimulatedRail:
    return SimulatedRail(
        Holders(),
        today=lambda: DAY,
        now=lambda: datetime(2026, 11, 23, 2, tzinfo=UTC),
        faults=faults,
        sleep=lambda _s: None,
        **kw,  # type: ignore[arg-type]
    )


def test_it_is_a_payment_rail_and_verifies_holders() -> None:
    r = rail()
    assert isinstance(r, PaymentRailPort)
    assert r.verify_holder(CARD, "张伟", "x", "13800138000").matched
    assert r.verify_holder("6222020000000000000", "张伟", "x", "1").reason == "card.unknown"


def test_the_same_key_never_moves_money_twice() -> None:
    r = rail()
    first = r.disburse("draw-1", CARD, 100_000)
    assert first.status is TransferStatus.SUCCEEDED and first.kind is TransferKind.DISBURSE
    assert r.disburse("draw-1", CARD, 100_000) == first
    assert r.statement(DAY) == [first]
    with pytest.raises(ProviderError) as err:
        r.disburse("draw-1", CARD, 100_001)
    assert err.value.code == "provider.rail.key_conflict"
    with pytest.raises(ProviderError):
        r.debit("draw-1", CARD, 100_000)  # the same key for another kind


def test_declined_cards_and_seeded_failures_answer_with_a_reason() -> None:
    r = rail(declined_cards=frozenset({CARD}))
    t = r.debit("ad-1", CARD, 5_000)
    assert (t.status, t.reason) == (TransferStatus.FAILED, "declined")
    flaky = rail(RailFaults(failure_rate=0.5, seed=3))
    results = [flaky.debit(f"k{i}", CARD, 100).status for i in range(200)]
    failed = results.count(TransferStatus.FAILED)
    assert 70 < failed < 130
    again = rail(RailFaults(failure_rate=0.5, seed=3))
    assert [again.debit(f"k{i}", CARD, 100).status for i in range(200)] == results


def test_timeouts_are_resolved_by_lookup_and_a_retry_with_the_same_key() -> None:
    r = rail(RailFaults(timeout_rate=1.0, seed=1))
    outcomes = {"moved": 0, "lost": 0}
    for i in range(100):
        key = f"draw-{i}"
        with pytest.raises(ProviderError) as err:
            r.disburse(key, CARD, 10_000)
        assert err.value.code == "provider.rail.timeout"
        outcomes["moved" if r.lookup(key) is not None else "lost"] += 1
    assert outcomes["moved"] > 20 and outcomes["lost"] > 20
    # once the rail answers again, retrying each key moves money exactly once per key
    r.faults = RailFaults()
    for i in range(100):
        r.disburse(f"draw-{i}", CARD, 10_000)
    assert len(r.statement(DAY)) == 100
    assert sum(t.amount_fen for t in r.statement(DAY)) == 100 * 10_000
    assert r.statement(date(2026, 11, 24)) == []


def test_a_transfer_moves_a_positive_amount() -> None:
    with pytest.raises(ProviderError) as err:
        rail().debit("k", CARD, 0)
    assert err.value.code == "provider.rail.invalid"
