"""Share-invitation rewards, decided and booked when the invitee's line is granted.

``settle_referral`` runs inside the caller's transaction (the one that grants the line), so the
line, the referral's outcome, the reward rows and their journal entries commit together or not at
all. Exactly once: the pending referral row is locked and moved out of ``pending`` with a
conditional update before anything is booked, and ``uq_reward_referral_role`` backs that up. The
inviter's customer row is locked too, so two invitees of one inviter settled at the same moment
cannot both pass under the cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa

from microloan.access import referrals as R
from microloan.domain.books import PLATFORM_BOOK, reward_entry
from microloan.domain.money import format_yuan
from microloan.errors import InvalidInput
from microloan.service.platform import Platform
from microloan.store.ledger import book_id, post
from microloan.store.schema import (
    bank_card,
    channel_identity,
    customer,
    decision,
    invitation,
    referral,
    reward,
)

PENDING, REWARDED, NO_REWARD = "pending", "rewarded", "no_reward"
INVITER, INVITEE = "inviter", "invitee"
MAX_LIST = 10_000


def settle_referral(
    conn: sa.Connection, p: Platform, invitee_customer_id: int, business_date: date
) -> list[dict[str, Any]]:
    """Decide and book the rewards of the invitee's pending referral (call it where the line is
    granted, in that transaction). Empty when there is nothing pending.

    One person is rewarded once: when identities on two channels each came through a code, the
    earliest referral is decided and the others close as ``referral.duplicate``.
    """
    mine = conn.execute(
        sa.select(
            channel_identity.c.channel,
            channel_identity.c.open_id,
            channel_identity.c.created_at,
            channel_identity.c.linked_at,
        ).where(channel_identity.c.customer_id == invitee_customer_id)
    ).all()
    if not mine:
        return []
    pending = conn.execute(
        sa.select(referral)
        .where(referral.c.status == PENDING, _identities(referral, "invitee_open_id", mine))
        .order_by(referral.c.referral_id)
        .with_for_update()
    ).all()
    settled: list[dict[str, Any]] = []
    for n, ref in enumerate(pending):
        if n == 0:
            settled.append(_settle_one(conn, p, ref, invitee_customer_id, mine, business_date))
        else:
            inviter = _inviter_of(conn, ref)
            reasons = (R.DUPLICATE,)
            settled.append(_close(conn, p, ref, invitee_customer_id, inviter, NO_REWARD, reasons))
    return [s for s in settled if s]


def _identities(table: sa.Table, open_id_column: str, mine: Sequence[Any]) -> Any:
    """``(channel, open_id)`` is one of the invitee's identities (a short OR: one per channel)."""
    ch, oid = table.c.channel, table.c[open_id_column]
    return sa.or_(*(sa.and_(ch == r.channel, oid == r.open_id) for r in mine))


def _inviter_of(conn: sa.Connection, ref: Any) -> int | None:
    """The code owner's customer now (it may have become one since the code was entered)."""
    owner = conn.execute(
        sa.select(channel_identity.c.customer_id).where(
            channel_identity.c.referral_code == ref.referral_code
        )
    ).scalar_one_or_none()
    found = owner if owner is not None else ref.inviter_customer_id
    return int(found) if found is not None else None


def _settle_one(
    conn: sa.Connection,
    p: Platform,
    ref: Any,
    invitee_id: int,
    mine: Sequence[Any],
    business_date: date,
) -> dict[str, Any]:
    inviter_id = _inviter_of(conn, ref)
    if inviter_id is not None and inviter_id != invitee_id:
        # serialises the cap: one inviter's rewards are decided one at a time
        conn.execute(
            sa.select(customer.c.customer_id)
            .where(customer.c.customer_id == inviter_id)
            .with_for_update()
        ).one()
    facts = R.ReferralFacts(
        inviter_customer_id=inviter_id,
        invitee_customer_id=invitee_id,
        inviter_devices=_devices(conn, inviter_id),
        invitee_devices=_devices(conn, invitee_id),
        inviter_cards=_cards(conn, inviter_id),
        invitee_cards=_cards(conn, invitee_id),
        invitee_known_before=_known_before(conn, ref, invitee_id, mine),
    )
    reasons = R.no_reward_reasons(facts)
    if reasons:
        return _close(conn, p, ref, invitee_id, inviter_id, NO_REWARD, reasons)
    assert inviter_id is not None
    rule = R.RewardRule(
        base_fen=p.settings.referral_reward_fen,
        double_after=p.settings.referral_double_after,
        cap_fen=p.settings.referral_cap_fen,
    )
    count, paid_fen = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(reward.c.amount_fen), 0)).where(
            reward.c.customer_id == inviter_id,
            reward.c.campaign == ref.campaign,
            reward.c.role == INVITER,
        )
    ).one()
    inviter = R.inviter_reward(rule, rewarded_before=int(count), paid_before_fen=int(paid_fen))
    result = _close(conn, p, ref, invitee_id, inviter_id, REWARDED, (inviter.outcome,))
    if not result:
        return result
    for customer_id, role, amount_fen in (
        (invitee_id, INVITEE, rule.base_fen),
        (inviter_id, INVITER, inviter.amount_fen),
    ):
        if amount_fen > 0:
            result["rewards"].append(
                _book(conn, p, ref, customer_id, role, amount_fen, business_date)
            )
    return result


def _close(
    conn: sa.Connection,
    p: Platform,
    ref: Any,
    invitee_id: int,
    inviter_id: int | None,
    status: str,
    reasons: tuple[str, ...],
) -> dict[str, Any]:
    """Move the referral out of ``pending``; empty when another transaction already did."""
    moved = conn.execute(
        referral.update()
        .where(referral.c.referral_id == ref.referral_id, referral.c.status == PENDING)
        .values(
            status=status,
            outcome=reasons[0],
            inviter_customer_id=inviter_id,
            invitee_customer_id=invitee_id,
            settled_at=p.now(),
        )
    ).rowcount
    if moved != 1:
        return {}
    return {
        "referral_id": int(ref.referral_id),
        "campaign": ref.campaign,
        "status": status,
        "outcome": reasons[0],
        "reasons": list(reasons),
        "inviter_customer_id": inviter_id,
        "invitee_customer_id": invitee_id,
        "rewards": [],
    }


def _book(
    conn: sa.Connection,
    p: Platform,
    ref: Any,
    customer_id: int,
    role: str,
    amount_fen: int,
    business_date: date,
) -> dict[str, Any]:
    """One reward: a balanced entry (Dr 6601 marketing expense / Cr 2241 rewards payable) in the
    platform book, and its reward row, in the caller's transaction."""
    now = p.now()
    entry_id = post(
        conn,
        reward_entry(amount_fen),
        book=book_id(conn, PLATFORM_BOOK),
        business_date=business_date,
        reference=f"reward:referral:{ref.referral_id}:{role}",
        created_at=now,
        customer_id=customer_id,
    )
    reward_id = conn.execute(
        reward.insert().returning(reward.c.reward_id),
        {
            "customer_id": customer_id,
            "referral_id": ref.referral_id,
            "role": role,
            "campaign": ref.campaign,
            "amount_fen": amount_fen,
            "entry_id": entry_id,
            "business_date": business_date,
            "created_at": now,
        },
    ).scalar_one()
    return {
        "reward_id": int(reward_id),
        "customer_id": customer_id,
        "role": role,
        "amount_fen": amount_fen,
        "amount": format_yuan(amount_fen),
        "entry_id": entry_id,
    }


def _devices(conn: sa.Connection, customer_id: int | None) -> frozenset[str]:
    """Every device the customer was seen on: their channel entries and their decisions."""
    if customer_id is None:
        return frozenset()
    entered = sa.select(channel_identity.c.device_id).where(
        channel_identity.c.customer_id == customer_id, channel_identity.c.device_id.is_not(None)
    )
    decided = sa.select(decision.c.device_id).where(
        decision.c.customer_id == customer_id, decision.c.device_id.is_not(None)
    )
    return frozenset(str(d) for d in conn.execute(sa.union(entered, decided)).scalars())


def _cards(conn: sa.Connection, customer_id: int | None) -> frozenset[str]:
    """The keyed hashes of every card the customer bound (including unbound ones)."""
    if customer_id is None:
        return frozenset()
    return frozenset(
        str(h)
        for h in conn.execute(
            sa.select(bank_card.c.card_hash).where(bank_card.c.customer_id == customer_id)
        ).scalars()
    )


def _known_before(conn: sa.Connection, ref: Any, invitee_id: int, mine: Sequence[Any]) -> bool:
    """Was the invitee known to the platform before the referral? A customer, a channel identity
    (linked or not) or any invitation older than the referral says so.

    Time decides where it can; invitation ids decide too, because the referral's own invitation
    is written in the same transaction (same timestamp) and any earlier invitation of the same
    person has a smaller id.
    """
    at = ref.created_at
    created = conn.execute(
        sa.select(customer.c.created_at).where(customer.c.customer_id == invitee_id)
    ).scalar_one()
    if _before(created, at) or any(
        _before(r.created_at, at) or (r.linked_at is not None and _before(r.linked_at, at))
        for r in mine
    ):
        return True
    own = conn.execute(
        sa.select(sa.func.min(invitation.c.invitation_id)).where(
            invitation.c.channel == ref.channel,
            invitation.c.open_id == ref.invitee_open_id,
            invitation.c.kind == "referral",
            invitation.c.referral_code == ref.referral_code,
        )
    ).scalar_one()
    earlier: sa.ColumnElement[bool] = invitation.c.created_at < at
    if own is not None:
        earlier = sa.or_(earlier, invitation.c.invitation_id < own)
    return bool(
        conn.execute(
            sa.select(sa.exists().where(_identities(invitation, "open_id", mine), earlier))
        ).scalar_one()
    )


def _before(a: Any, b: Any) -> bool:
    """``a < b`` for timestamps that may come back naive (SQLite) or aware (PostgreSQL)."""
    if (a.tzinfo is None) != (b.tzinfo is None):
        a, b = a.replace(tzinfo=None), b.replace(tzinfo=None)
    return bool(a < b)


def list_rewards(
    p: Platform, customer_id: int | None = None, *, limit: int = 100
) -> dict[str, Any]:
    """Rewards booked, newest first, with totals by role (one customer's, or everyone's)."""
    if customer_id is not None and customer_id <= 0:
        raise InvalidInput("must be a positive id", field="customer")
    if not 0 < limit <= MAX_LIST:
        raise InvalidInput(f"must be 1–{MAX_LIST}", field="limit")
    where = [] if customer_id is None else [reward.c.customer_id == customer_id]
    with p.engine.connect() as conn:
        totals = conn.execute(
            sa.select(reward.c.role, sa.func.count(), sa.func.sum(reward.c.amount_fen))
            .where(*where)
            .group_by(reward.c.role)
        ).all()
        rows = conn.execute(
            sa.select(reward, referral.c.outcome)
            .select_from(reward.join(referral, referral.c.referral_id == reward.c.referral_id))
            .where(*where)
            .order_by(reward.c.reward_id.desc())
            .limit(limit)
        ).all()
    return {
        "customer_id": customer_id,
        "totals": {
            role: {"rewards": int(n), "amount": format_yuan(int(total))}
            for role, n, total in sorted(totals)
        },
        "rewards": [
            {
                "reward_id": r.reward_id,
                "customer_id": r.customer_id,
                "role": r.role,
                "campaign": r.campaign,
                "amount": format_yuan(r.amount_fen),
                "referral_id": r.referral_id,
                "outcome": r.outcome,
                "entry_id": r.entry_id,
                "business_date": r.business_date.isoformat(),
            }
            for r in rows
        ],
    }
