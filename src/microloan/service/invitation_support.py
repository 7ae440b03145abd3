"""What the invitation services share: channel and input checks, live invitations, fresh
signed codes, and small helpers."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any, TypeVar

import sqlalchemy as sa

from microloan.access import referral_codes
from microloan.access import whitelist as W
from microloan.access.crypto import Vault
from microloan.errors import InvalidInput
from microloan.store.schema import channel, channel_identity, invitation

T = TypeVar("T")
CHUNK = 500  # ids per IN (...) list: well inside every database's parameter limit
MAX_QUOTA = 1_000_000
MAX_CODE_ROUNDS = 8  # fresh codes colliding with stored ones 8 times in a row: a broken generator
CHANNEL_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{1,15}$")
LIVE, EXPIRED = "live", "expired"
WHITELIST, REFERRAL = "whitelist", "referral"

# The random part of every code: unpredictable (never seeded), so codes cannot be enumerated.
_code_body = secrets.token_bytes


def require_channel(conn: sa.Connection, code: str, *, lock: bool = False) -> Any:
    statement = sa.select(channel).where(channel.c.code == code)
    row = conn.execute(statement.with_for_update() if lock else statement).one_or_none()
    if row is None or not row.active:
        raise InvalidInput(
            f"unknown or inactive channel {code!r}", code="channel.unknown", field="channel"
        )
    return row


def live_invitations(conn: sa.Connection, code: str, open_ids: list[str], day: date) -> set[str]:
    """The open ids with a live invitation on ``day``; stale ``live`` rows are expired here."""
    live: set[str] = set()
    stale: list[int] = []
    for part in chunks(open_ids):
        for r in conn.execute(
            sa.select(invitation.c.invitation_id, invitation.c.open_id, invitation.c.expires_on)
            .where(
                invitation.c.channel == code,
                invitation.c.open_id.in_(part),
                invitation.c.status == LIVE,
            )
            .with_for_update()
        ):
            if day < r.expires_on:
                live.add(r.open_id)
            else:
                stale.append(r.invitation_id)
    for part_ids in chunks(stale):
        conn.execute(
            invitation.update()
            .where(invitation.c.invitation_id.in_(part_ids))
            .values(status=EXPIRED)
        )
    return live


def fresh_codes(conn: sa.Connection, vault: Vault, n: int) -> list[str]:
    """``n`` new signed codes, none already stored (2⁴⁰ bodies: collisions are rare, not nil)."""
    codes: set[str] = set()
    for _ in range(MAX_CODE_ROUNDS):
        if len(codes) == n:
            return sorted(codes)
        drawn = {
            referral_codes.issue(vault, _code_body(referral_codes.BODY_BYTES))
            for _ in range(n - len(codes))
        } - codes
        for part in chunks(sorted(drawn)):
            drawn -= set(
                conn.execute(
                    sa.select(channel_identity.c.referral_code).where(
                        channel_identity.c.referral_code.in_(part)
                    )
                ).scalars()
            )
        codes |= drawn
    assert len(codes) == n, "the code generator keeps repeating stored codes"
    return sorted(codes)


def valid_channel_code(text: str) -> str:
    code = (text or "").strip().lower()
    if not CHANNEL_CODE_RE.match(code):
        raise InvalidInput(
            f"unknown or inactive channel {text!r}", code="channel.unknown", field="channel"
        )
    return code


def valid_open_id(text: str) -> str:
    value = text or ""
    if not 0 < len(value) <= W.MAX_OPEN_ID_CHARS or value.strip() != value:
        raise InvalidInput(
            f"an open id is 1–{W.MAX_OPEN_ID_CHARS} characters without outer spaces",
            field="open_id",
        )
    return value


def valid_name(text: str, field: str) -> str:
    value = (text or "").strip()
    if not 0 < len(value) <= 40:
        raise InvalidInput("a name of 1–40 characters is required", field=field)
    return value


def check_quota(quota: int) -> None:
    if isinstance(quota, bool) or not isinstance(quota, int) or not 0 <= quota <= MAX_QUOTA:
        raise InvalidInput(f"a daily quota is a whole number 0–{MAX_QUOTA}", field="quota")


def chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def to_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
