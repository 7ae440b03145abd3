"""Payments through the rail (servicing §2): a payment's states, and why one failed.

A payment is one transfer the platform asked the rail for, named by its idempotency key. It is
``queued`` until a payer takes it, ``sent`` while the rail is being called, ``unknown`` after a
call that got no answer (the money may or may not have moved: only the rail can tell), and
then ``succeeded`` or ``failed`` for good. ``sent`` and ``unknown`` are resolved by asking the
rail (``lookup``) and, if the rail never got it, by sending again with the same key.
"""

from __future__ import annotations

from enum import StrEnum

from microloan.errors import RuleViolation


class PaymentKind(StrEnum):
    DISBURSE = "disburse"  # 放款: platform → borrower
    DEBIT = "debit"  # 扣款: borrower → platform (auto-debit)


class PaymentStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PaymentEvent(StrEnum):
    SEND = "send"  # handed to the rail (again, with the same key)
    NO_ANSWER = "no_answer"  # the call timed out
    SUCCEEDED = "succeeded"  # the rail says it moved
    FAILED = "failed"  # the rail says it did not, with a reason
    CANCEL = "cancel"  # given up without the rail having it (never reached it, date closed)


S, E = PaymentStatus, PaymentEvent
# (state, event) → state; a pair not listed is illegal and raises.
PAYMENT_TRANSITIONS: dict[tuple[PaymentStatus, PaymentEvent], PaymentStatus] = {
    (S.QUEUED, E.SEND): S.SENT,
    (S.SENT, E.SEND): S.SENT,  # a payer that crashed mid-call: asked, then sent again
    (S.UNKNOWN, E.SEND): S.SENT,  # the rail never got it: the same key again
    (S.SENT, E.NO_ANSWER): S.UNKNOWN,
    (S.SENT, E.SUCCEEDED): S.SUCCEEDED,
    (S.UNKNOWN, E.SUCCEEDED): S.SUCCEEDED,
    (S.SENT, E.FAILED): S.FAILED,
    (S.UNKNOWN, E.FAILED): S.FAILED,
    (S.QUEUED, E.CANCEL): S.FAILED,
    (S.SENT, E.CANCEL): S.FAILED,
    (S.UNKNOWN, E.CANCEL): S.FAILED,
}
FINAL = frozenset({S.SUCCEEDED, S.FAILED})


def payment_transition(status: PaymentStatus, event: PaymentEvent) -> PaymentStatus:
    new = PAYMENT_TRANSITIONS.get((status, event))
    if new is None:
        raise RuleViolation(
            f"a {status} payment cannot take {event}", code="payment.transition.illegal"
        )
    return new


def sources(event: PaymentEvent) -> tuple[PaymentStatus, ...]:
    """The states ``event`` may leave from (a compare-and-set's ``WHERE status IN …``)."""
    return tuple(s for (s, e) in PAYMENT_TRANSITIONS if e is event)


def target(event: PaymentEvent) -> PaymentStatus:
    """The one state ``event`` leads to, whichever state it leaves."""
    (new,) = {n for (_, e), n in PAYMENT_TRANSITIONS.items() if e is event}
    return new


# Why a payment failed, for the borrower: Chinese first, English beside it.
REASONS: dict[str, str] = {
    "insufficient_funds": "余额不足 insufficient funds",
    "card_closed": "银行卡已注销 the card is closed",
    "limit_exceeded": "超出银行卡限额 over the card's limit",
    "declined": "银行拒绝交易 declined by the bank",
    "not_sent": "日终前未发出 not sent before the close",
    "not_reached": "支付通道未收到 the rail never received it",
    "mismatch": "支付通道记录不符 the rail holds a different transfer",
    "not_booked": "已扣款但未能入账 debited but not booked",
}
MAX_FAILURE_LEN = 100  # the column's width


def failure_text(code: str, note: str = "") -> str:
    """What is stored on a failed payment: ``code: 中文 English`` (and a short note)."""
    text = f"{code}: {REASONS.get(code, code)}"
    if note:
        text += f" ({note})"
    return text[:MAX_FAILURE_LEN]


def split_failure(stored: str | None) -> tuple[str | None, str | None]:
    """The reason code and the words for people, from what :func:`failure_text` stored."""
    if not stored:
        return None, None
    code, _, words = stored.partition(": ")
    return code, words or code
