"""A payment's states: every (state, event) pair, legal or not; failure reasons for people."""

from __future__ import annotations

import itertools

import pytest

from microloan.domain.payments import (
    MAX_FAILURE_LEN,
    PAYMENT_TRANSITIONS,
    REASONS,
    PaymentEvent,
    PaymentStatus,
    failure_text,
    payment_transition,
    sources,
    split_failure,
    target,
)
from microloan.errors import RuleViolation

S, E = PaymentStatus, PaymentEvent
EXPECTED = {
    (S.QUEUED, E.SEND): S.SENT,
    (S.SENT, E.SEND): S.SENT,
    (S.UNKNOWN, E.SEND): S.SENT,
    (S.SENT, E.NO_ANSWER): S.UNKNOWN,
    (S.SENT, E.SUCCEEDED): S.SUCCEEDED,
    (S.UNKNOWN, E.SUCCEEDED): S.SUCCEEDED,
    (S.SENT, E.FAILED): S.FAILED,
    (S.UNKNOWN, E.FAILED): S.FAILED,
    (S.QUEUED, E.CANCEL): S.FAILED,
    (S.SENT, E.CANCEL): S.FAILED,
    (S.UNKNOWN, E.CANCEL): S.FAILED,
}


def test_the_table_is_exactly_the_documented_one() -> None:
    assert PAYMENT_TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("state", "event"), list(itertools.product(S, E)))
def test_every_payment_pair(state: PaymentStatus, event: PaymentEvent) -> None:
    expected = EXPECTED.get((state, event))
    if expected is None:
        with pytest.raises(RuleViolation) as refused:
            payment_transition(state, event)
        assert refused.value.code == "payment.transition.illegal"
    else:
        assert payment_transition(state, event) is expected
        assert state in sources(event) and target(event) is expected


def test_final_states_are_left_by_no_event() -> None:
    for event in E:
        assert S.SUCCEEDED not in sources(event) and S.FAILED not in sources(event)


def test_failure_text_is_chinese_then_english_and_fits_its_column() -> None:
    for code, words in REASONS.items():
        text = failure_text(code, "loan.repay.exceeds_payoff")
        assert len(text) <= MAX_FAILURE_LEN
        assert split_failure(failure_text(code)) == (code, words)
        assert "\u4e00" <= words[0] <= "\u9fff" and any(c.isascii() and c.isalpha() for c in words)
    assert split_failure(None) == (None, None)
