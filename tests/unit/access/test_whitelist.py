"""White-list pre-screen on channel activity, and the seeded sample."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microloan.access import whitelist as W
from microloan.access.whitelist import Candidate, CreditConditions, sample, unmet_conditions


def _c(**changes: object) -> Candidate:
    base: dict[str, object] = {
        "open_id": "u1",
        "months_active": 6,
        "active_days_90": 20,
        "payments_90d": 5,
        "device_id": None,
    }
    base.update(changes)
    return Candidate(**base)  # type: ignore[arg-type]


def test_the_default_conditions_are_minimums() -> None:
    rules = CreditConditions()
    assert unmet_conditions(rules, _c()) == ()
    assert unmet_conditions(rules, _c(months_active=5)) == (W.BELOW_MONTHS_ACTIVE,)
    assert unmet_conditions(rules, _c(active_days_90=19)) == (W.BELOW_ACTIVE_DAYS,)
    assert unmet_conditions(rules, _c(payments_90d=4)) == (W.BELOW_PAYMENTS,)
    assert unmet_conditions(rules, _c(months_active=0, active_days_90=0, payments_90d=0)) == (
        W.BELOW_MONTHS_ACTIVE,
        W.BELOW_ACTIVE_DAYS,
        W.BELOW_PAYMENTS,
    )


def test_conditions_are_configurable() -> None:
    strict = CreditConditions(months_active_min=12, active_days_90_min=60, payments_90d_min=30)
    assert unmet_conditions(strict, _c()) != ()
    assert strict.as_dict() == {
        "months_active_min": 12,
        "active_days_90_min": 60,
        "payments_90d_min": 30,
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"open_id": ""},
        {"open_id": "x" * 65},
        {"open_id": " padded"},
        {"months_active": -1},
        {"payments_90d": True},
        {"active_days_90": 91},
        {"device_id": "d" * 65},
    ],
)
def test_malformed_records_are_named(changes: dict[str, object]) -> None:
    assert _c(**changes).problem() is not None


def test_a_good_record_has_no_problem() -> None:
    assert _c(device_id="dev-1").problem() is None


def test_remaining_quota() -> None:
    assert W.remaining_quota(10, 0) == 10
    assert W.remaining_quota(10, 7) == 3
    assert W.remaining_quota(10, 12) == 0


ids = st.lists(st.text("abcdef0123", min_size=1, max_size=6), max_size=60)


@given(eligible=ids, k=st.integers(0, 80), seed=st.integers(0, 2**63 - 1))
def test_sampling_is_seeded_and_ignores_input_order(eligible: list[str], k: int, seed: int) -> None:
    drawn = sample(eligible, k, seed=seed)
    assert drawn == sample(list(reversed(eligible)), k, seed=seed)
    assert len(drawn) == min(k, len(set(eligible)))
    assert set(drawn) <= set(eligible)
    assert drawn == sorted(set(drawn))


def test_different_seeds_draw_different_samples() -> None:
    eligible = [f"u{n:03d}" for n in range(100)]
    assert sample(eligible, 10, seed=1) != sample(eligible, 10, seed=2)
