"""Invitation only (access-and-decisions §1): channels, white-list batches, share invitations
with signed codes, and the public "is this invitation official?" check.

Every write runs in one ``Platform.transaction``; business dates come from the business clock.
Rewards for share invitations are settled by ``settle_referral`` (``referral_rewards``), inside
the transaction that grants the invitee's line; it is re-exported here.

An invitation is live while its status is ``live`` and the business date is before its
``expires_on``; a stale ``live`` row is marked ``expired`` the next time that user is screened or
enters a code (the partial unique index allows one ``live`` row per channel user).
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from microloan.access import referral_codes
from microloan.access import whitelist as W
from microloan.access.crypto import Vault
from microloan.access.referrals import official_check_message
from microloan.access.whitelist import Candidate, CreditConditions
from microloan.errors import InvalidInput, NotFound, RuleViolation
from microloan.service.clock import read_clock
from microloan.service.invitation_support import (
    CHANNEL_CODE_RE,
    LIVE,
    REFERRAL,
    check_quota,
    fresh_codes,
    live_invitations,
    require_channel,
    to_json,
    valid_channel_code,
    valid_name,
    valid_open_id,
)
from microloan.service.platform import Platform
from microloan.service.referral_rewards import list_rewards, settle_referral
from microloan.service.whitelist_batch import run_whitelist
from microloan.store.schema import (
    channel,
    channel_identity,
    invitation,
    invitation_batch,
    referral,
)

__all__ = [
    "Candidate",
    "CreditConditions",
    "add_channel",
    "cached_check",
    "check_code",
    "enter_with_code",
    "list_channels",
    "list_invitations",
    "list_rewards",
    "referral_code_of",
    "run_whitelist",
    "settle_referral",
]

MAX_LIST = 10_000
MAX_CODE_INPUT_CHARS = 64


# ---------------------------------------------------------------------------------------------
# Channels


def add_channel(p: Platform, code: str, name_zh: str, name_en: str, quota: int) -> dict[str, Any]:
    """Add a channel (a third is configuration, not code); active at once."""
    text = (code or "").strip().lower()
    if not CHANNEL_CODE_RE.match(text):
        raise InvalidInput(
            "a channel code is 2–16 lower-case letters, digits or _, starting with a letter",
            code="channel.code.format",
            field="code",
        )
    code = text
    names = {"name_zh": valid_name(name_zh, "name_zh"), "name_en": valid_name(name_en, "name_en")}
    check_quota(quota)

    def work(conn: sa.Connection) -> dict[str, Any]:
        if conn.execute(sa.select(channel.c.code).where(channel.c.code == code)).first():
            raise InvalidInput(
                f"channel {code!r} already exists", code="channel.exists", field="code"
            )
        row = {"code": code, **names, "daily_invite_quota": quota, "active": True}
        conn.execute(channel.insert(), row)
        return row

    return p.transaction(work)


def list_channels(p: Platform) -> list[dict[str, Any]]:
    with p.engine.connect() as conn:
        rows = conn.execute(sa.select(channel).order_by(channel.c.code)).all()
    return [
        {
            "code": r.code,
            "name_zh": r.name_zh,
            "name_en": r.name_en,
            "daily_invite_quota": r.daily_invite_quota,
            "active": bool(r.active),
        }
        for r in rows
    ]


# ---------------------------------------------------------------------------------------------
# Share invitations


def referral_code_of(p: Platform, channel_code: str, open_id: str) -> str:
    """The personal invitation code of an invited channel user."""
    code, oid = valid_channel_code(channel_code), valid_open_id(open_id)
    with p.engine.connect() as conn:
        require_channel(conn, code)
        found = conn.execute(
            sa.select(channel_identity.c.referral_code).where(
                channel_identity.c.channel == code, channel_identity.c.open_id == oid
            )
        ).scalar_one_or_none()
    if found is None:
        raise NotFound(
            f"{code} user {oid!r} has not been invited and has no invitation code",
            code="invitation.not_invited",
            field="open_id",
        )
    return str(found)


def enter_with_code(
    p: Platform, channel_code: str, open_id: str, code: str, *, device_id: str | None = None
) -> dict[str, Any]:
    """A channel user enters through someone's invitation code and becomes invited.

    Records a live ``referral`` invitation, the user's own code, and (once per channel user:
    the first code wins) a pending referral that ``settle_referral`` decides when the line is
    granted. Refused: a code that is malformed, forged or unknown, the user's own code, and a
    user already invited or already a customer (nothing is written).
    """
    ch, oid = valid_channel_code(channel_code), valid_open_id(open_id)
    if device_id is not None and not 0 < len(device_id) <= W.MAX_DEVICE_ID_CHARS:
        raise InvalidInput(f"must be 1–{W.MAX_DEVICE_ID_CHARS} characters", field="device_id")
    inviter_code = _genuine(p.vault, code)

    def work(conn: sa.Connection) -> dict[str, Any]:
        require_channel(conn, ch)
        owner = conn.execute(
            sa.select(
                channel_identity.c.channel,
                channel_identity.c.open_id,
                channel_identity.c.customer_id,
            ).where(channel_identity.c.referral_code == inviter_code)
        ).one_or_none()
        if owner is None:
            raise InvalidInput(
                "this code is genuine but was not given to anyone",
                code="invitation.code.unknown",
                field="code",
            )
        me = conn.execute(
            sa.select(channel_identity).where(
                channel_identity.c.channel == ch, channel_identity.c.open_id == oid
            )
        ).one_or_none()
        day = read_clock(conn, p.now).open_date
        _refuse_entry(conn, ch, oid, day, owner, me)
        return _record_entry(conn, p, ch, oid, day, device_id, inviter_code, owner, me)

    try:
        return p.transaction(work)
    except IntegrityError:
        # A concurrent entry of the same user (or a code collision) won the race: run again
        # against what it committed, which answers "already invited" or uses a fresh code.
        return p.transaction(work)


def _refuse_entry(
    conn: sa.Connection, ch: str, oid: str, day: date, owner: Any, me: Any | None
) -> None:
    own = (owner.channel, owner.open_id) == (ch, oid) or (
        me is not None and me.customer_id is not None and me.customer_id == owner.customer_id
    )
    if own:
        raise RuleViolation(
            "this is your own invitation code: share it with others",
            code="invitation.code.own",
            field="code",
        )
    if me is not None and me.customer_id is not None:
        raise RuleViolation(
            "you are already a customer: no invitation is needed",
            code="invitation.already_invited",
            field="code",
        )
    if oid in live_invitations(conn, ch, [oid], day):
        raise RuleViolation(
            "you are already invited: open the loan entry in the channel",
            code="invitation.already_invited",
            field="code",
        )


def _record_entry(
    conn: sa.Connection,
    p: Platform,
    ch: str,
    oid: str,
    day: date,
    device_id: str | None,
    inviter_code: str,
    owner: Any,
    me: Any | None,
) -> dict[str, Any]:
    now = p.now()
    own_code = _own_code(conn, p, ch, oid, device_id, me, now)
    expires_on = day + timedelta(days=p.settings.invitation_valid_days)
    reason = {"rule": REFERRAL, "inviter_code": inviter_code, "inviter_channel": owner.channel}
    invitation_id = conn.execute(
        invitation.insert().returning(invitation.c.invitation_id),
        {
            "channel": ch,
            "open_id": oid,
            "kind": REFERRAL,
            "status": LIVE,
            "batch_id": None,
            "referral_code": inviter_code,
            "reason": to_json(reason),
            "business_date": day,
            "expires_on": expires_on,
            "created_at": now,
        },
    ).scalar_one()
    earlier = conn.execute(
        sa.select(referral.c.referral_id).where(
            referral.c.channel == ch, referral.c.invitee_open_id == oid
        )
    ).scalar_one_or_none()
    referral_id = (
        earlier
        if earlier is not None
        else _new_referral(conn, p, ch, oid, inviter_code, owner, now)
    )
    return {
        "channel": ch,
        "open_id": oid,
        "invited": True,
        "invitation_id": int(invitation_id),
        "business_date": day.isoformat(),
        "expires_on": expires_on.isoformat(),
        "referral_code": own_code,
        "inviter_code": inviter_code,
        "referral_id": int(referral_id),
        "referral": "recorded" if earlier is None else "kept_first",
    }


def _own_code(
    conn: sa.Connection,
    p: Platform,
    ch: str,
    oid: str,
    device_id: str | None,
    me: Any | None,
    now: datetime,
) -> str:
    """The entrant's personal code: kept when they have one, else issued with their identity."""
    if me is not None and me.referral_code is not None:
        return str(me.referral_code)
    code = fresh_codes(conn, p.vault, 1)[0]
    if me is None:
        conn.execute(
            channel_identity.insert(),
            {
                "channel": ch,
                "open_id": oid,
                "customer_id": None,
                "referral_code": code,
                "device_id": device_id,
                "created_at": now,  # the referral's own time: not "known before" it
                "linked_at": None,
            },
        )
    else:
        conn.execute(
            channel_identity.update()
            .where(channel_identity.c.channel == ch, channel_identity.c.open_id == oid)
            .values(referral_code=code)
        )
    return code


def _new_referral(
    conn: sa.Connection,
    p: Platform,
    ch: str,
    oid: str,
    inviter_code: str,
    owner: Any,
    now: datetime,
) -> int:
    """The pending referral that the invitee's line grant will settle (first code wins)."""
    return int(
        conn.execute(
            referral.insert().returning(referral.c.referral_id),
            {
                "channel": ch,
                "invitee_open_id": oid,
                "referral_code": inviter_code,
                "inviter_customer_id": owner.customer_id,
                "invitee_customer_id": None,
                "campaign": p.settings.referral_campaign,
                "status": "pending",
                "outcome": None,
                "created_at": now,
                "settled_at": None,
            },
        ).scalar_one()
    )


def _genuine(vault: Vault, code: str) -> str:
    """The canonical form of a genuine code; refuses malformed and forged ones."""
    canonical = referral_codes.normalise(code or "")
    if canonical is None:
        raise InvalidInput(
            "an invitation code is 16 letters and digits, e.g. 7K2M-9QF3-PA1X-0D4R",
            code="invitation.code.format",
            field="code",
        )
    if not referral_codes.is_genuine(vault, canonical):
        raise InvalidInput(
            "this code was not issued by the platform",
            code="invitation.code.forged",
            field="code",
        )
    return canonical


# ---------------------------------------------------------------------------------------------
# The public check
#
# Whether a code is signed by the platform is a pure check (an HMAC); whether it was issued
# needs the database. The check is public and a shared code's landing page is opened by many
# people at once, so each process keeps the issued codes it has recently confirmed (per
# database, at most CHECK_CACHE_MAX, each for CHECK_CACHE_TTL_S seconds). An issued code never
# changes or moves (its channel is fixed when it is stored), so a kept answer can be stale only
# if the code were removed: it is then still confirmed for at most CHECK_CACHE_TTL_S seconds.
# Codes found not issued are not kept (only a leaked key could sign them): each is read again.
# What a text typed reads as (its canonical form, whether the key signed it) is pure: the last
# CHECK_CACHE_MAX texts read are kept too, so a popular code is not decoded and signed again.

CHECK_CACHE_TTL_S = 5.0
CHECK_CACHE_MAX = 65_536

_CODE_CHANNEL = sa.select(channel_identity.c.channel).where(
    channel_identity.c.referral_code == sa.bindparam("code")
)
# per database (engine): issued code → (monotonic time it may be served until, its channel)
_issued: weakref.WeakKeyDictionary[Engine, dict[str, tuple[float, str]]] = (
    weakref.WeakKeyDictionary()
)
_issued_lock = threading.Lock()
# per signing key: code as typed → (as shown, canonical form if signed by the platform)
_reads: weakref.WeakKeyDictionary[Vault, dict[str, tuple[str, str | None]]] = (
    weakref.WeakKeyDictionary()
)


def check_code(p: Platform, code: str) -> dict[str, Any]:
    """Is this invitation official? Genuine means signed by the platform AND issued by it.

    The signature is checked first (no database for a forged or malformed code), then one lookup
    on the unique index of issued codes (or a recent confirmation of this process, see above).
    Never writes; the answer always carries the reminder that opening is free and never done on
    someone's behalf.
    """
    shown, signed = _read_code(p, code)
    found: str | None = None
    if signed is not None:
        found = _recently_issued(p, signed)
        if found is None:
            found = _issued_channel(p, signed)
    return _check_answer(shown, found)


def cached_check(p: Platform, code: str) -> dict[str, Any] | None:
    """``check_code``'s answer when it needs no database — a malformed or forged code, or one
    this process confirmed as issued in the last CHECK_CACHE_TTL_S seconds — else None (then
    call ``check_code``). Cheap and non-blocking, for callers on an event loop."""
    shown, signed = _read_code(p, code)
    if signed is None:
        return _check_answer(shown, None)
    found = _recently_issued(p, signed)
    return None if found is None else _check_answer(shown, found)


def _read_code(p: Platform, code: str) -> tuple[str, str | None]:
    """The code as the answer shows it, and its canonical form if the platform signed it (a
    pure function of the text and the key: each process keeps recent answers)."""
    text = (code or "").strip()[:MAX_CODE_INPUT_CHARS]
    vault = p.vault
    read = _reads.get(vault)
    if read is None:
        with _issued_lock:
            read = _reads.setdefault(vault, {})
    known = read.get(text)
    if known is not None:
        return known
    canonical = referral_codes.normalise(text)
    signed = canonical if canonical and referral_codes.is_genuine(vault, canonical) else None
    if len(read) >= CHECK_CACHE_MAX:
        read.clear()  # the bound: start over
    read[text] = (canonical or text, signed)
    return canonical or text, signed


def _check_answer(shown: str, channel_code: str | None) -> dict[str, Any]:
    genuine = channel_code is not None
    return {
        "code": shown,
        "genuine": genuine,
        "channel": channel_code,
        **official_check_message(genuine),
    }


def _recently_issued(p: Platform, canonical: str) -> str | None:
    kept = _issued.get(p.engine, {}).get(canonical)
    if kept is None or kept[0] < time.monotonic():
        return None
    return kept[1]


def _issued_channel(p: Platform, canonical: str) -> str | None:
    """The channel of an issued code, read from the database (and kept a while), else None."""
    with p.reading() as conn:
        found = conn.execute(_CODE_CHANNEL, {"code": canonical}).scalar_one_or_none()
    if found is None:
        return None
    with _issued_lock:
        kept = _issued.setdefault(p.engine, {})
        if len(kept) >= CHECK_CACHE_MAX:
            kept.clear()  # the bound: start over rather than track ages
        kept[canonical] = (time.monotonic() + CHECK_CACHE_TTL_S, str(found))
    return str(found)


# ---------------------------------------------------------------------------------------------
# Listing


def list_invitations(
    p: Platform, channel_code: str, business_date: date | None = None, *, limit: int = 100
) -> dict[str, Any]:
    """The batches and invitations of one channel on one business date (default: the open one)."""
    code = valid_channel_code(channel_code)
    if not 0 < limit <= MAX_LIST:
        raise InvalidInput(f"must be 1–{MAX_LIST}", field="limit")
    with p.engine.connect() as conn:
        require_channel(conn, code)
        day = business_date or read_clock(conn, p.now).open_date
        batches = conn.execute(
            sa.select(invitation_batch)
            .where(invitation_batch.c.channel == code, invitation_batch.c.business_date == day)
            .order_by(invitation_batch.c.batch_id)
        ).all()
        on_day = (invitation.c.channel == code, invitation.c.business_date == day)
        total = conn.execute(
            sa.select(sa.func.count()).select_from(invitation).where(*on_day)
        ).scalar_one()
        rows = conn.execute(
            sa.select(invitation, channel_identity.c.referral_code.label("own_code"))
            .select_from(
                invitation.outerjoin(
                    channel_identity,
                    sa.and_(
                        channel_identity.c.channel == invitation.c.channel,
                        channel_identity.c.open_id == invitation.c.open_id,
                    ),
                )
            )
            .where(*on_day)
            .order_by(invitation.c.invitation_id)
            .limit(limit)
        ).all()
    return {
        "channel": code,
        "business_date": day.isoformat(),
        "batches": [
            {
                "batch_id": b.batch_id,
                "seed": b.seed,
                "screened": b.screened,
                "eligible": b.eligible,
                "invited": b.invited,
            }
            for b in batches
        ],
        "count": int(total),
        "invitations": [
            {
                "invitation_id": r.invitation_id,
                "open_id": r.open_id,
                "kind": r.kind,
                "status": r.status,
                "batch_id": r.batch_id,
                "inviter_code": r.referral_code,
                "referral_code": r.own_code,
                "expires_on": r.expires_on.isoformat(),
                "reason": json.loads(r.reason),
            }
            for r in rows
        ],
    }


# ---------------------------------------------------------------------------------------------
# Small helpers
