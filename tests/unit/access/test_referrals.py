"""Share-invitation rewards: amounts with doubling and cap, abuse checks, the official check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microloan.access import referrals as R
from microloan.access.referrals import (
    InviterReward,
    ReferralFacts,
    RewardRule,
    inviter_reward,
    no_reward_reasons,
    official_check_message,
    reward_sequence,
)

DEFAULT = RewardRule(base_fen=500, double_after=5, cap_fen=20_000)  # the embedded settings


def test_the_worked_example_of_the_docs() -> None:
    # 5 × ¥5, then ¥10 each: 2,500 + 17 × 1,000 = 19,500 fen; the 23rd is cut to the ¥5 left
    amounts = reward_sequence(DEFAULT, 25)
    assert amounts[:5] == [500] * 5
    assert amounts[5:22] == [1000] * 17
    assert amounts[22] == 500
    assert amounts[23:] == [0, 0]
    assert sum(amounts) == 20_000


@pytest.mark.parametrize(
    ("rewarded_before", "paid_before_fen", "expected"),
    [
        (0, 0, InviterReward(500, R.REWARD_BASE)),
        (4, 2000, InviterReward(500, R.REWARD_BASE)),
        (5, 2500, InviterReward(1000, R.REWARD_DOUBLED)),
        (21, 19_000, InviterReward(1000, R.REWARD_DOUBLED)),
        (22, 19_500, InviterReward(500, R.REWARD_CAPPED)),
        (23, 20_000, InviterReward(0, R.REWARD_CAP_REACHED)),
        (30, 25_000, InviterReward(0, R.REWARD_CAP_REACHED)),  # over the cap (settings lowered)
    ],
)
def test_inviter_reward(
    rewarded_before: int, paid_before_fen: int, expected: InviterReward
) -> None:
    got = inviter_reward(DEFAULT, rewarded_before=rewarded_before, paid_before_fen=paid_before_fen)
    assert got == expected


def test_a_cap_below_one_reward_pays_what_it_allows() -> None:
    rule = RewardRule(base_fen=500, double_after=5, cap_fen=300)
    assert reward_sequence(rule, 3) == [300, 0, 0]
    assert inviter_reward(rule, rewarded_before=0, paid_before_fen=0).outcome == R.REWARD_CAPPED


def test_doubling_from_the_first_when_double_after_is_zero() -> None:
    rule = RewardRule(base_fen=100, double_after=0, cap_fen=10_000)
    assert reward_sequence(rule, 3) == [200, 200, 200]


rules = st.builds(
    RewardRule,
    base_fen=st.integers(1, 50_000),
    double_after=st.integers(0, 30),
    cap_fen=st.integers(0, 500_000),
)


@given(rule=rules, invites=st.integers(0, 300))
def test_the_inviter_never_earns_more_than_the_cap(rule: RewardRule, invites: int) -> None:
    amounts = reward_sequence(rule, invites)
    assert len(amounts) == invites
    assert all(a >= 0 for a in amounts)
    assert sum(amounts) <= rule.cap_fen
    # and the cap is reached exactly once there are enough invites to reach it
    if invites * rule.base_fen >= rule.cap_fen:
        assert sum(amounts) == rule.cap_fen


@given(rule=rules, invites=st.integers(0, 300))
def test_doubling_starts_after_n_successes(rule: RewardRule, invites: int) -> None:
    paid = 0
    for n, amount in enumerate(reward_sequence(rule, invites)):
        full = rule.base_fen * (2 if n >= rule.double_after else 1)
        assert amount == min(full, rule.cap_fen - paid)
        paid += amount


def _facts(**changes: object) -> ReferralFacts:
    base: dict[str, object] = {
        "inviter_customer_id": 1,
        "invitee_customer_id": 2,
        "inviter_devices": frozenset({"dev-a"}),
        "invitee_devices": frozenset({"dev-b"}),
        "inviter_cards": frozenset({"card-a"}),
        "invitee_cards": frozenset({"card-b"}),
        "invitee_known_before": False,
    }
    base.update(changes)
    return ReferralFacts(**base)  # type: ignore[arg-type]


def test_a_clean_referral_is_rewarded() -> None:
    assert no_reward_reasons(_facts()) == ()


@pytest.mark.parametrize(
    ("changes", "reasons"),
    [
        ({"inviter_customer_id": None}, (R.INVITER_NOT_CUSTOMER,)),
        (
            {"inviter_customer_id": None, "invitee_known_before": True},
            (R.INVITER_NOT_CUSTOMER, R.ALREADY_KNOWN),
        ),
        ({"invitee_customer_id": 1}, (R.SAME_IDENTITY,)),
        ({"invitee_devices": frozenset({"dev-b", "dev-a"})}, (R.SHARED_DEVICE,)),
        ({"invitee_cards": frozenset({"card-a"})}, (R.SHARED_CARD,)),
        ({"invitee_known_before": True}, (R.ALREADY_KNOWN,)),
        (
            {
                "invitee_devices": frozenset({"dev-a"}),
                "invitee_cards": frozenset({"card-a"}),
                "invitee_known_before": True,
            },
            (R.SHARED_DEVICE, R.SHARED_CARD, R.ALREADY_KNOWN),
        ),
    ],
)
def test_each_abuse_case_earns_nothing(
    changes: dict[str, object], reasons: tuple[str, ...]
) -> None:
    assert no_reward_reasons(_facts(**changes)) == reasons


def test_empty_values_are_never_shared() -> None:
    facts = _facts(inviter_devices=frozenset({""}), invitee_devices=frozenset({""}))
    assert no_reward_reasons(facts) == ()


def test_every_outcome_code_fits_its_column() -> None:
    codes = (*R.NO_REWARD_OUTCOMES, R.REWARD_BASE, R.REWARD_DOUBLED, R.REWARD_CAPPED)
    assert all(len(c) <= 40 for c in (*codes, R.REWARD_CAP_REACHED))


@pytest.mark.parametrize("genuine", [True, False])
def test_the_official_check_always_reminds_that_opening_is_free(genuine: bool) -> None:
    answer = official_check_message(genuine)
    assert "开通免费" in answer["message_zh"] and "代开通" in answer["message_zh"]
    assert "free" in answer["message_en"] and "on anyone's behalf" in answer["message_en"]
    assert ("不是" in answer["message_zh"]) is not genuine
    assert ("not an invitation" in answer["message_en"]) is not genuine
