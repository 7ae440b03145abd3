"""Blocked lists: identity numbers, phones, cards and devices the platform will not serve
(fraud confirmed, an industry list, a court order). Values are kept only as keyed hashes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from microloan.errors import InvalidInput
from microloan.service.platform import Platform
from microloan.store.schema import blocked_list

KINDS = ("id_number", "phone", "card", "device")


def block(p: Platform, entries: Iterable[tuple[str, str]], reason: str) -> dict[str, Any]:
    """Add ``(kind, value)`` pairs; adding one already there changes nothing."""
    reason = reason.strip()
    if not 1 <= len(reason) <= 100:
        raise InvalidInput("a reason of 1–100 characters is required", field="reason")
    vault = p.vault
    rows = []
    for kind, value in entries:
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
        if not value.strip():
            raise InvalidInput("a value is required", field="value")
        key = value.strip().upper() if kind == "id_number" else value.strip()
        rows.append({"kind": kind, "value_hash": vault.blind(key, kind=kind)})

    def work(conn: sa.Connection) -> dict[str, Any]:
        known = {
            (r.kind, r.value_hash)
            for r in conn.execute(sa.select(blocked_list.c.kind, blocked_list.c.value_hash))
        }
        fresh = [r for r in rows if (r["kind"], r["value_hash"]) not in known]
        fresh = list({(r["kind"], r["value_hash"]): r for r in fresh}.values())
        if fresh:
            now = p.now()
            conn.execute(
                blocked_list.insert(), [r | {"reason": reason, "added_at": now} for r in fresh]
            )
        return {"added": len(fresh), "already": len(rows) - len(fresh)}

    return p.transaction(work)
