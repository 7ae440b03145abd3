"""The white-list batch (access-and-decisions §1): pre-screen a channel's users on data that
needs no credit-report query, then invite a seeded random sample within the daily quota."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from microloan.access import whitelist as W
from microloan.access.crypto import Vault
from microloan.access.whitelist import Candidate, CreditConditions
from microloan.domain.line import LineStatus
from microloan.errors import InvalidInput
from microloan.service.clock import read_clock
from microloan.service.invitation_support import (
    LIVE,
    WHITELIST,
    check_quota,
    chunks,
    fresh_codes,
    live_invitations,
    require_channel,
    to_json,
    valid_channel_code,
)
from microloan.service.platform import Platform
from microloan.store.schema import (
    blocked_list,
    channel_identity,
    credit_line,
    invitation,
    invitation_batch,
)

MAX_CANDIDATES = 1_000_000  # one batch's input
MAX_SEED = 2**63 - 1  # the batch row stores it as BIGINT
MAX_REJECTED_SHOWN = 20


def run_whitelist(
    p: Platform,
    channel_code: str,
    candidates: Iterable[Candidate],
    *,
    seed: int,
    business_date: date | None = None,
    quota: int | None = None,
    conditions: CreditConditions | None = None,
) -> dict[str, Any]:
    """Pre-screen a channel's users and invite a seeded random sample within the daily quota.

    ``quota`` may lower today's quota below the channel's (never raise it); the channel row is
    locked so two batches on one date never invite more than the quota between them.
    """
    code = valid_channel_code(channel_code)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidInput(f"must be a whole number 0–{MAX_SEED}", field="seed")
    if quota is not None:
        check_quota(quota)
    rules = conditions or CreditConditions()
    valid, not_eligible, rejected, screened = _prepare(candidates)

    def work(conn: sa.Connection) -> dict[str, Any]:
        ch = require_channel(conn, code, lock=True)
        if quota is not None and quota > ch.daily_invite_quota:
            raise InvalidInput(
                f"may not exceed the channel's daily quota {ch.daily_invite_quota}",
                code="invitation.quota.above_channel",
                field="quota",
            )
        day = business_date or read_clock(conn, p.now).open_date
        daily = ch.daily_invite_quota if quota is None else quota
        already = int(
            conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(invitation_batch.c.invited), 0)).where(
                    invitation_batch.c.channel == code, invitation_batch.c.business_date == day
                )
            ).scalar_one()
        )
        refused = Counter(not_eligible)
        eligible, codes = _screen(conn, p.vault, code, day, valid, rules, refused)
        chosen = W.sample(list(eligible), W.remaining_quota(daily, already), seed=seed)
        batch_id = int(
            conn.execute(
                invitation_batch.insert().returning(invitation_batch.c.batch_id),
                {
                    "channel": code,
                    "business_date": day,
                    "seed": seed,
                    "screened": screened,
                    "eligible": len(eligible),
                    "invited": len(chosen),
                    "created_at": p.now(),
                },
            ).scalar_one()
        )
        invitees = [eligible[o] for o in chosen]
        _invite_whitelisted(conn, p, code, day, batch_id, seed, rules, invitees, codes)
        return {
            "channel": code,
            "business_date": day.isoformat(),
            "batch_id": batch_id,
            "seed": seed,
            "screened": screened,
            "eligible": len(eligible),
            "invited": len(chosen),
            "already_invited_today": already,
            "quota": daily,
            "not_eligible": dict(sorted(refused.items())),
            "rejected": rejected,
        }

    try:
        return p.transaction(work)
    except IntegrityError:
        # A user entered through a code (or a fresh code collided) while the batch ran: screen
        # again against what that committed.
        return p.transaction(work)


def _prepare(
    candidates: Iterable[Candidate],
) -> tuple[list[Candidate], list[str], list[dict[str, str]], int]:
    """Valid candidates (first of each open id), the reasons others were set aside, problem
    records for the malformed ones (collected, not raised: one bad record never stops a batch)
    and how many records were screened."""
    valid: list[Candidate] = []
    set_aside: list[str] = []
    rejected: list[dict[str, str]] = []
    seen: set[str] = set()
    screened = 0
    for c in candidates:
        screened += 1
        if screened > MAX_CANDIDATES:
            raise InvalidInput(
                f"a batch screens at most {MAX_CANDIDATES} users", field="candidates"
            )
        problem = c.problem()
        if problem is not None:
            set_aside.append(W.MALFORMED)
            if len(rejected) < MAX_REJECTED_SHOWN:
                open_id = str(c.open_id)[: W.MAX_OPEN_ID_CHARS]
                rejected.append({"open_id": open_id, "problem": problem})
        elif c.open_id in seen:
            set_aside.append(W.DUPLICATE)
        else:
            seen.add(c.open_id)
            valid.append(c)
    return valid, set_aside, rejected, screened


def _screen(
    conn: sa.Connection,
    vault: Vault,
    code: str,
    day: date,
    candidates: list[Candidate],
    rules: CreditConditions,
    refused: Counter[str],
) -> tuple[dict[str, Candidate], dict[str, str | None]]:
    """The eligible candidates by open id, and the known identities' codes (None: no code yet).

    Each refused candidate is counted once, under the first check it fails: activity, blocked
    device, the platform's own history, a live invitation.
    """
    passing: list[Candidate] = []
    for c in candidates:
        unmet = W.unmet_conditions(rules, c)
        if unmet:
            refused[unmet[0]] += 1
        else:
            passing.append(c)
    blocked = _blocked_devices(conn, vault, [c.device_id for c in passing if c.device_id])
    open_ids = [c.open_id for c in passing]
    history = _history(conn, code, open_ids)
    live = live_invitations(conn, code, open_ids, day)
    eligible: dict[str, Candidate] = {}
    codes: dict[str, str | None] = {}
    for c in passing:
        known = history.get(c.open_id)
        if c.device_id and c.device_id in blocked:
            refused[W.BLOCKED_DEVICE] += 1
        elif known is not None and known.line_status is not None:
            blocked_line = known.overdue_blocked or known.line_status != LineStatus.ACTIVE.value
            refused[W.LINE_BLOCKED if blocked_line else W.ALREADY_CUSTOMER] += 1
        elif c.open_id in live:
            refused[W.LIVE_INVITATION] += 1
        else:
            eligible[c.open_id] = c
            if known is not None:
                codes[c.open_id] = known.referral_code
    return eligible, codes


def _blocked_devices(conn: sa.Connection, vault: Vault, device_ids: list[str]) -> set[str]:
    """The device ids on the blocked list (matched by their keyed hash)."""
    by_hash = {vault.blind(d, kind="device"): d for d in set(device_ids)}
    found: set[str] = set()
    for part in chunks(sorted(by_hash)):
        found.update(
            by_hash[h]
            for h in conn.execute(
                sa.select(blocked_list.c.value_hash).where(
                    blocked_list.c.kind == "device", blocked_list.c.value_hash.in_(part)
                )
            ).scalars()
        )
    return found


def _history(conn: sa.Connection, code: str, open_ids: list[str]) -> dict[str, Any]:
    """Known channel identities among ``open_ids``, with their customer's line (if any)."""
    found: dict[str, Any] = {}
    joined = channel_identity.outerjoin(
        credit_line, credit_line.c.customer_id == channel_identity.c.customer_id
    )
    for part in chunks(open_ids):
        rows = conn.execute(
            sa.select(
                channel_identity.c.open_id,
                channel_identity.c.referral_code,
                credit_line.c.status.label("line_status"),
                credit_line.c.overdue_blocked,
            )
            .select_from(joined)
            .where(channel_identity.c.channel == code, channel_identity.c.open_id.in_(part))
        )
        found.update((r.open_id, r) for r in rows)
    return found


def _invite_whitelisted(
    conn: sa.Connection,
    p: Platform,
    code: str,
    day: date,
    batch_id: int,
    seed: int,
    rules: CreditConditions,
    invitees: list[Candidate],
    codes: dict[str, str | None],
) -> None:
    """One live invitation per invitee, and a channel identity with a personal code."""
    if not invitees:
        return
    now = p.now()
    needs_code = [c for c in invitees if codes.get(c.open_id) is None]
    fresh = iter(fresh_codes(conn, p.vault, len(needs_code)))
    new_rows = []
    for c in needs_code:
        if c.open_id in codes:  # known identity without a code yet
            conn.execute(
                channel_identity.update()
                .where(channel_identity.c.channel == code, channel_identity.c.open_id == c.open_id)
                .values(referral_code=next(fresh))
            )
        else:
            new_rows.append(
                {
                    "channel": code,
                    "open_id": c.open_id,
                    "customer_id": None,
                    "referral_code": next(fresh),
                    "device_id": c.device_id,
                    "created_at": now,
                    "linked_at": None,
                }
            )
    if new_rows:
        conn.execute(channel_identity.insert(), new_rows)
    expires_on = day + timedelta(days=p.settings.invitation_valid_days)
    conditions = rules.as_dict()
    conn.execute(
        invitation.insert(),
        [
            {
                "channel": code,
                "open_id": c.open_id,
                "kind": WHITELIST,
                "status": LIVE,
                "batch_id": batch_id,
                "referral_code": None,
                "reason": to_json(
                    {
                        "rule": WHITELIST,
                        "batch_id": batch_id,
                        "seed": seed,
                        "conditions": conditions,
                        "figures": c.figures(),
                        "checks": ["channel_activity", "platform_history", "blocked_devices"],
                        "device_checked": c.device_id is not None,
                    }
                ),
                "business_date": day,
                "expires_on": expires_on,
                "created_at": now,
            }
            for c in invitees
        ],
    )
