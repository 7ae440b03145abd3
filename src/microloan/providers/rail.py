"""The payment rail (servicing §2): card-holder verification, disbursement, debit, and the
daily statement — a port and its simulated adapter.

Contract for a real rail:
- every money-moving call carries the platform's idempotency key; the same key again answers
  the first call's transfer and never moves money twice; a key reused for a different card,
  amount or kind is refused (``provider.rail.key_conflict``);
- an answer is ``succeeded`` or ``failed`` (with a reason code: ``insufficient_funds``,
  ``card_closed``, ``limit_exceeded``, ``declined``); a call that times out raises
  ``provider.rail.timeout`` — the money may or may not have moved — and the caller resolves it
  by ``lookup(key)``, never by calling again with a new key;
- ``statement(day)`` lists every transfer the rail settled on that business date, for the
  platform's daily reconciliation.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from microloan.providers.ports import (
    HolderCheck,
    HolderVerificationPort,
    ProviderError,
    provider_error,
)


class TransferKind(StrEnum):
    DISBURSE = "disburse"  # platform → borrower's card (放款)
    DEBIT = "debit"  # borrower's card → platform (扣款)


class TransferStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Transfer:
    key: str
    kind: TransferKind
    card_number: str
    amount_fen: int
    status: TransferStatus
    reason: str  # "ok" when succeeded
    business_date: date
    settled_at: datetime
    rail_ref: str = ""  # the rail's own reference of the transfer (its statement line)

    def __post_init__(self) -> None:
        if self.amount_fen <= 0:
            raise provider_error("rail", "invalid", "a transfer moves a positive amount")
        if (self.status is TransferStatus.SUCCEEDED) != (self.reason == "ok"):
            raise provider_error("rail", "invalid", "succeeded exactly when the reason is ok")


@runtime_checkable
class PaymentRailPort(HolderVerificationPort, Protocol):
    """Moves money to and from bound cards. p99 under 2 s; timeouts are resolved by lookup."""

    def disburse(self, key: str, card_number: str, amount_fen: int) -> Transfer: ...

    def debit(self, key: str, card_number: str, amount_fen: int) -> Transfer: ...

    def lookup(self, key: str) -> Transfer | None: ...

    def statement(self, day: date) -> list[Transfer]: ...


@dataclass(frozen=True, slots=True)
class RailFaults:
    """What the simulated rail does wrong, decided per key by a seeded hash (reproducible)."""

    latency_ms: int = 0
    failure_rate: float = 0.0  # share of transfers answered failed (declined / no funds)
    timeout_rate: float = 0.0  # share of calls that time out (the transfer may still happen)
    seed: int = 0

    def __post_init__(self) -> None:
        assert self.latency_ms >= 0
        assert 0.0 <= self.failure_rate <= 1.0 and 0.0 <= self.timeout_rate <= 1.0


NO_RAIL_FAULTS = RailFaults()


def _uniform(seed: int, *parts: object) -> float:
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class CallFault(StrEnum):
    """What happens to one call of a simulated rail (decided by the seed, the key, the attempt)."""

    NONE = "none"  # answered
    LOST = "lost"  # timed out before reaching the rail: nothing moved
    LATE = "late"  # the transfer happened, but the answer was lost (a timeout)


def call_fault(faults: RailFaults, key: str, attempt: int) -> CallFault:
    """The fate of the ``attempt``-th call with ``key``: half of the timeouts have moved money."""
    if _uniform(faults.seed, "timeout", key, attempt) >= faults.timeout_rate:
        return CallFault.NONE
    return CallFault.LOST if _uniform(faults.seed, "lost", key, attempt) < 0.5 else CallFault.LATE


def transfer_outcome(
    faults: RailFaults, key: str, card_number: str, declined_cards: frozenset[str]
) -> tuple[TransferStatus, str]:
    """The answer a simulated rail gives a new transfer: the same for every attempt of a key."""
    if card_number in declined_cards:
        return TransferStatus.FAILED, "declined"
    if _uniform(faults.seed, "fail", key) < faults.failure_rate:
        return TransferStatus.FAILED, "insufficient_funds"
    return TransferStatus.SUCCEEDED, "ok"


def sim_rail_ref(key: str) -> str:
    """The simulated rail's reference of a transfer: stable for a key, tells nothing about it."""
    return "SIM" + hashlib.sha256(key.encode()).hexdigest()[:24].upper()


class SimulatedRail:
    """An in-memory rail: idempotent by key, with seeded failures and timeouts.

    A timed-out call has, half of the time (by the seed), still moved the money: exactly the
    case a platform must resolve with ``lookup`` rather than by paying again.
    """

    def __init__(
        self,
        holders: HolderVerificationPort,
        *,
        today: Callable[[], date],
        now: Callable[[], datetime],
        faults: RailFaults = NO_RAIL_FAULTS,
        declined_cards: frozenset[str] = frozenset(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._holders = holders
        self._today, self._now = today, now
        self.faults = faults
        self.declined_cards = declined_cards
        self._sleep = sleep
        self._transfers: dict[str, Transfer] = {}
        self.calls = 0

    def verify_holder(self, card_number: str, name: str, id_number: str, phone: str) -> HolderCheck:
        return self._holders.verify_holder(card_number, name, id_number, phone)

    def disburse(self, key: str, card_number: str, amount_fen: int) -> Transfer:
        return self._move(TransferKind.DISBURSE, key, card_number, amount_fen)

    def debit(self, key: str, card_number: str, amount_fen: int) -> Transfer:
        return self._move(TransferKind.DEBIT, key, card_number, amount_fen)

    def lookup(self, key: str) -> Transfer | None:
        return self._transfers.get(key)

    def statement(self, day: date) -> list[Transfer]:
        return sorted(
            (t for t in self._transfers.values() if t.business_date == day),
            key=lambda t: (t.settled_at, t.key),
        )

    def _move(self, kind: TransferKind, key: str, card_number: str, amount_fen: int) -> Transfer:
        self.calls += 1
        f = self.faults
        if f.latency_ms:
            self._sleep(f.latency_ms / 1000)
        known = self._transfers.get(key)
        if known is not None:
            if (known.kind, known.card_number, known.amount_fen) != (kind, card_number, amount_fen):
                raise provider_error(
                    "rail", "key_conflict", f"key {key} was used for another transfer"
                )
            return known
        fault = call_fault(f, key, self.calls)
        if fault is CallFault.LOST:
            raise rail_timeout(key)  # the request never reached the rail: nothing moved
        transfer = Transfer(
            key,
            kind,
            card_number,
            amount_fen,
            *transfer_outcome(f, key, card_number, self.declined_cards),
            business_date=self._today(),
            settled_at=self._now(),
            rail_ref=sim_rail_ref(key),
        )
        self._transfers[key] = transfer
        if fault is CallFault.LATE:
            raise rail_timeout(key)  # it moved, but the answer was lost
        return transfer


def rail_timeout(key: str) -> ProviderError:
    return provider_error("rail", "timeout", f"no answer for {key}: resolve it with lookup")
