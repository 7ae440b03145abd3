"""Line and loan states: every (state, event) pair, legal or not."""

from __future__ import annotations

import itertools

import pytest

from microloan.domain.line import (
    LINE_TRANSITIONS,
    LOAN_TRANSITIONS,
    LineEvent,
    LineStatus,
    LoanEvent,
    LoanStatus,
    line_transition,
    loan_transition,
)
from microloan.errors import RuleViolation

LINE_EXPECTED = {
    (LineStatus.ACTIVE, LineEvent.FREEZE): LineStatus.FROZEN,
    (LineStatus.FROZEN, LineEvent.UNFREEZE): LineStatus.ACTIVE,
    (LineStatus.ACTIVE, LineEvent.CLOSE): LineStatus.CLOSED,
    (LineStatus.FROZEN, LineEvent.CLOSE): LineStatus.CLOSED,
}
LOAN_EXPECTED = {
    (LoanStatus.PENDING, LoanEvent.DISBURSED): LoanStatus.OPEN,
    (LoanStatus.PENDING, LoanEvent.DISBURSEMENT_FAILED): LoanStatus.FAILED,
    (LoanStatus.OPEN, LoanEvent.SETTLED): LoanStatus.CLOSED,
}


def test_the_tables_are_exactly_the_rulebook_transitions() -> None:
    assert LINE_TRANSITIONS == LINE_EXPECTED
    assert LOAN_TRANSITIONS == LOAN_EXPECTED


@pytest.mark.parametrize(("state", "event"), list(itertools.product(LineStatus, LineEvent)))
def test_every_line_pair(state: LineStatus, event: LineEvent) -> None:
    expected = LINE_EXPECTED.get((state, event))
    if expected is None:
        with pytest.raises(RuleViolation) as refused:
            line_transition(state, event, open_loans=0)
        assert refused.value.code == "line.transition.illegal"
    else:
        assert line_transition(state, event, open_loans=0) is expected


@pytest.mark.parametrize("state", [LineStatus.ACTIVE, LineStatus.FROZEN])
def test_a_line_with_open_loans_cannot_close(state: LineStatus) -> None:
    with pytest.raises(RuleViolation) as refused:
        line_transition(state, LineEvent.CLOSE, open_loans=1)
    assert refused.value.code == "line.close.open_loans"


@pytest.mark.parametrize(("state", "event"), list(itertools.product(LoanStatus, LoanEvent)))
def test_every_loan_pair(state: LoanStatus, event: LoanEvent) -> None:
    expected = LOAN_EXPECTED.get((state, event))
    if expected is None:
        with pytest.raises(RuleViolation) as refused:
            loan_transition(state, event)
        assert refused.value.code == "loan.transition.illegal"
    else:
        assert loan_transition(state, event) is expected
