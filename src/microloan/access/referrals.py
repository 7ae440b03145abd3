"""Share-invitation rewards (access-and-decisions §1): amounts, doubling, cap and abuse checks.

Pure functions of plain values: the service gathers the facts from the store and books what these
decide. Amounts are integer fen.

Rules
- The invitee's reward is the base amount.
- The inviter's reward is the base amount, doubled once the inviter already has
  ``double_after`` rewarded invites in the campaign (so with ``double_after=5`` the sixth and
  later are doubled), cut to what remains under the inviter's cap for the campaign, and nothing
  once the cap is reached.
- No reward at all (for either side) when the inviter is not a verified customer, is the same
  person as the invitee, shares a device or a bank card with the invitee, or the invitee was
  already known to the platform before the referral.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Why a referral earns nothing; the first that applies, in this order, is stored as the outcome.
INVITER_NOT_CUSTOMER = "referral.inviter_not_customer"
SAME_IDENTITY = "referral.same_identity"
SHARED_DEVICE = "referral.shared_device"
SHARED_CARD = "referral.shared_card"
ALREADY_KNOWN = "referral.already_known"
DUPLICATE = "referral.duplicate"  # one person entered through codes on two channels
NO_REWARD_OUTCOMES = (
    INVITER_NOT_CUSTOMER,
    SAME_IDENTITY,
    SHARED_DEVICE,
    SHARED_CARD,
    ALREADY_KNOWN,
    DUPLICATE,
)

# Which rule set the inviter's amount (the invitee always gets the base amount).
REWARD_BASE = "reward.base"
REWARD_DOUBLED = "reward.doubled"
REWARD_CAPPED = "reward.capped"  # cut to what remained under the cap
REWARD_CAP_REACHED = "reward.cap_reached"  # the inviter gets nothing, the invitee still does


@dataclass(frozen=True, slots=True)
class RewardRule:
    """One campaign's reward terms."""

    base_fen: int  # each side, per granted invitee
    double_after: int  # the inviter's reward doubles once this many invites were rewarded
    cap_fen: int  # the most one inviter earns in the campaign

    def __post_init__(self) -> None:
        assert self.base_fen >= 0, "zero switches the rewards off"
        assert self.double_after >= 0
        assert self.cap_fen >= 0


@dataclass(frozen=True, slots=True)
class InviterReward:
    amount_fen: int
    outcome: str  # one of the REWARD_* codes


def inviter_reward(
    rule: RewardRule, *, rewarded_before: int, paid_before_fen: int
) -> InviterReward:
    """The inviter's reward for one more successful invite.

    ``rewarded_before`` counts the inviter's invites already rewarded in the campaign and
    ``paid_before_fen`` what they earned from them (as inviter).
    """
    assert rewarded_before >= 0 and paid_before_fen >= 0
    doubled = rewarded_before >= rule.double_after
    full_fen = rule.base_fen * (2 if doubled else 1)
    remaining_fen = max(0, rule.cap_fen - paid_before_fen)
    if remaining_fen == 0:
        return InviterReward(0, REWARD_CAP_REACHED)
    if full_fen > remaining_fen:
        return InviterReward(remaining_fen, REWARD_CAPPED)
    return InviterReward(full_fen, REWARD_DOUBLED if doubled else REWARD_BASE)


def reward_sequence(rule: RewardRule, invites: int) -> list[int]:
    """The inviter's reward for each of ``invites`` successful invites, in order (for the docs and
    the property tests: the service computes one at a time from the stored totals)."""
    amounts: list[int] = []
    paid_fen = 0
    for n in range(invites):
        amount_fen = inviter_reward(rule, rewarded_before=n, paid_before_fen=paid_fen).amount_fen
        amounts.append(amount_fen)
        paid_fen += amount_fen
    return amounts


@dataclass(frozen=True, slots=True)
class ReferralFacts:
    """What the abuse checks look at; every value is a plain id or a keyed hash."""

    inviter_customer_id: int | None  # None while the code's owner is not a verified customer
    invitee_customer_id: int
    inviter_devices: frozenset[str]
    invitee_devices: frozenset[str]
    inviter_cards: frozenset[str]  # card hashes (blind index), bound or since unbound
    invitee_cards: frozenset[str]
    invitee_known_before: bool  # a customer, a linked identity or an invitation before the code


def no_reward_reasons(facts: ReferralFacts) -> tuple[str, ...]:
    """Every reason this referral earns nothing, in the documented order; empty: reward it."""
    if facts.inviter_customer_id is None:
        # Nothing to compare the invitee with: only verified customers on both sides are rewarded.
        return (INVITER_NOT_CUSTOMER, *(() if not facts.invitee_known_before else (ALREADY_KNOWN,)))
    reasons: list[str] = []
    if facts.inviter_customer_id == facts.invitee_customer_id:
        reasons.append(SAME_IDENTITY)
    if shares(facts.inviter_devices, facts.invitee_devices):
        reasons.append(SHARED_DEVICE)
    if shares(facts.inviter_cards, facts.invitee_cards):
        reasons.append(SHARED_CARD)
    if facts.invitee_known_before:
        reasons.append(ALREADY_KNOWN)
    return tuple(reasons)


def shares(mine: Iterable[str], theirs: Iterable[str]) -> bool:
    """True when the two sets have a (non-empty) value in common."""
    return bool({v for v in mine if v} & {v for v in theirs if v})


# The public "is this invitation official?" answer always carries this reminder: fraudsters sell
# "opening on your behalf" (代开通) as a service and ask for a fee or the user's details.
REMINDER_ZH = (
    "开通免费，平台从不代人开通，请勿向任何人支付“代开通”费用，也不要把验证码、密码告诉任何人。"
)
REMINDER_EN = (
    "Opening is free. The platform never opens an account on anyone's behalf: never pay anyone "
    "an 'opening on your behalf' fee, and never share a verification code or password."
)


def official_check_message(genuine: bool) -> dict[str, str]:
    """The answer to "is this invitation official?", Chinese first, English beside it."""
    if genuine:
        zh = "这是平台发出的正式邀请码。"
        en = "This is an official invitation code issued by the platform."
    else:
        zh = "这不是平台发出的邀请码，请勿相信，也不要按对方要求操作。"
        en = "This is not an invitation code issued by the platform: do not trust it."
    return {"message_zh": f"{zh}{REMINDER_ZH}", "message_en": f"{en} {REMINDER_EN}"}
