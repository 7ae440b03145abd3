"""The simulated payment rail with its own books in the database (``sim_rail_transfer``).

The same contract and fault model as :class:`~microloan.providers.rail.SimulatedRail` (the same
pure functions decide failures and timeouts), but its transfers live in a table, so the worker
process, the command line and the server share one rail. A real rail keeps these books on its
side; the platform reads them only through the port (``lookup``, ``statement``).

- Every call runs in its own short transaction on the rail's engine, never in the caller's.
- Card numbers never reach the table: it keeps ``card_ref(card_number)``, a keyed hash for a
  card, or the account reference itself for a customer without a bound card.
- A timeout's fate is decided by the seed, the key and the attempt (the n-th call with that key
  in this process), so the same key's second call may answer where the first timed out.
- Two callers racing with one key meet on the table's primary key: one transfer, both answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from microloan.providers.ports import HolderCheck, HolderVerificationPort, provider_error
from microloan.providers.rail import (
    NO_RAIL_FAULTS,
    CallFault,
    RailFaults,
    Transfer,
    TransferKind,
    TransferStatus,
    call_fault,
    rail_timeout,
    sim_rail_ref,
    transfer_outcome,
)
from microloan.store.schema import sim_rail_transfer as T

MAX_CARD_REF = 64  # the column's width


class StoredRail:
    """A simulated rail whose transfers persist in ``sim_rail_transfer``."""

    def __init__(
        self,
        engine: Engine,
        *,
        today: Callable[[], date],
        now: Callable[[], datetime],
        card_ref: Callable[[str], str],
        holders: Callable[[], HolderVerificationPort] | None = None,
        faults: RailFaults = NO_RAIL_FAULTS,
        declined_cards: frozenset[str] = frozenset(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._engine = engine
        self._today, self._now = today, now
        self._card_ref = card_ref
        self._holders = holders
        self.faults = faults
        self.declined_cards = declined_cards  # card numbers (or account references) declined
        self._sleep = sleep
        self._attempts: dict[str, int] = {}
        self.calls = 0  # money-moving calls made through this object

    def verify_holder(self, card_number: str, name: str, id_number: str, phone: str) -> HolderCheck:
        if self._holders is None:
            raise provider_error("rail", "unavailable", "holder verification is not configured")
        return self._holders().verify_holder(card_number, name, id_number, phone)

    def disburse(self, key: str, card_number: str, amount_fen: int) -> Transfer:
        return self._move(TransferKind.DISBURSE, key, card_number, amount_fen)

    def debit(self, key: str, card_number: str, amount_fen: int) -> Transfer:
        return self._move(TransferKind.DEBIT, key, card_number, amount_fen)

    def lookup(self, key: str) -> Transfer | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(T).where(T.c.key == key)).one_or_none()
        return None if row is None else _transfer(row)

    def statement(self, day: date) -> list[Transfer]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(T).where(T.c.value_date == day).order_by(T.c.at, T.c.key))
            return [_transfer(r) for r in rows]

    def _move(self, kind: TransferKind, key: str, card_number: str, amount_fen: int) -> Transfer:
        if amount_fen <= 0:
            raise provider_error("rail", "invalid", "a transfer moves a positive amount")
        self.calls += 1
        attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        f = self.faults
        if f.latency_ms:
            self._sleep(f.latency_ms / 1000)
        ref = self.card_ref(card_number)
        fault = call_fault(f, key, attempt)
        status, reason = transfer_outcome(f, key, card_number, self.declined_cards)
        row = {
            "key": key,
            "kind": kind.value,
            "card_ref": ref,
            "amount_fen": amount_fen,
            "status": status.value,
            "rail_ref": sim_rail_ref(key),
            "failure": None if reason == "ok" else reason,
            "value_date": self._today(),
            "at": self._now(),
        }
        fresh = False
        with self._engine.begin() as conn:  # the rail's own short transaction
            held = conn.execute(sa.select(T).where(T.c.key == key)).one_or_none()
            if held is None and fault is not CallFault.LOST:
                held = conn.execute(_insert(conn.dialect.name), row).one_or_none()
                fresh = held is not None
                if held is None:  # a racing call with the same key won it
                    held = conn.execute(sa.select(T).where(T.c.key == key)).one()
        if held is None:
            raise rail_timeout(key)  # the request never reached the rail: nothing moved
        if fresh and fault is CallFault.LATE:
            raise rail_timeout(key)  # it moved, but the answer was lost
        return _same(_transfer(held), kind, ref, amount_fen)  # the first transfer of the key

    def card_ref(self, card_number: str) -> str:
        ref = self._card_ref(card_number)
        assert 0 < len(ref) <= MAX_CARD_REF, "a card reference fits its column"
        assert ref != card_number or not card_number.isdigit(), "never a card number in clear"
        return ref


def _same(known: Transfer, kind: TransferKind, ref: str, amount_fen: int) -> Transfer:
    """The first transfer with this key, when the new call asks for the same one."""
    if (known.kind, known.card_number, known.amount_fen) != (kind, ref, amount_fen):
        raise provider_error(
            "rail", "key_conflict", f"key {known.key} was used for another transfer"
        )
    return known


def _transfer(row: Any) -> Transfer:
    m = row if isinstance(row, dict) else row._mapping
    return Transfer(
        m["key"],
        TransferKind(m["kind"]),
        m["card_ref"],  # the rail's reference of the card, never the number
        int(m["amount_fen"]),
        TransferStatus(m["status"]),
        m["failure"] or "ok",
        business_date=m["value_date"],
        settled_at=m["at"],
        rail_ref=m["rail_ref"],
    )


def _insert(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(T).on_conflict_do_nothing(index_elements=["key"]).returning(*T.c)
