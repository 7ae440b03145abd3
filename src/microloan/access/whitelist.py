"""White-list pre-screen and sampling (access-and-decisions §1), pure.

The pre-screen uses only data that needs no credit-report query: the channel's activity figures
(this module), the platform's own history and the blocked lists (looked up by the service).
Sampling is seeded: the same seed over the same eligible users invites the same people.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

MAX_OPEN_ID_CHARS = 64
MAX_DEVICE_ID_CHARS = 64

# Why a candidate was not eligible (counted per reason in the batch result).
BELOW_MONTHS_ACTIVE = "whitelist.months_active"
BELOW_ACTIVE_DAYS = "whitelist.active_days_90"
BELOW_PAYMENTS = "whitelist.payments_90d"
BLOCKED_DEVICE = "whitelist.blocked_device"
LINE_BLOCKED = "whitelist.line_blocked"  # linked customer's line is overdue-blocked/frozen/closed
ALREADY_CUSTOMER = "whitelist.already_customer"  # linked customer already holds a line
LIVE_INVITATION = "whitelist.live_invitation"
DUPLICATE = "whitelist.duplicate"  # the same open id twice in one batch's input
MALFORMED = "whitelist.malformed"  # an open id or figure the batch cannot use


@dataclass(frozen=True, slots=True)
class Candidate:
    """One channel user as the channel's activity data describes them."""

    open_id: str
    months_active: int  # months since the channel account's first activity
    active_days_90: int  # days with activity in the last 90
    payments_90d: int  # channel payments in the last 90 days
    device_id: str | None = None

    def problem(self) -> str | None:
        """Why this record cannot be screened, or None."""
        if (
            not self.open_id
            or len(self.open_id) > MAX_OPEN_ID_CHARS
            or self.open_id.strip() != (self.open_id)
        ):
            return f"open id must be 1–{MAX_OPEN_ID_CHARS} characters without outer spaces"
        if self.device_id is not None and len(self.device_id) > MAX_DEVICE_ID_CHARS:
            return f"device id must be at most {MAX_DEVICE_ID_CHARS} characters"
        figures = (self.months_active, self.active_days_90, self.payments_90d)
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in figures):
            return "activity figures must be whole numbers ≥ 0"
        if self.active_days_90 > 90:
            return "active_days_90 cannot exceed 90"
        return None

    def figures(self) -> dict[str, int]:
        return {
            "months_active": self.months_active,
            "active_days_90": self.active_days_90,
            "payments_90d": self.payments_90d,
        }


@dataclass(frozen=True, slots=True)
class CreditConditions:
    """The current white-list conditions on channel activity (each a minimum)."""

    months_active_min: int = 6
    active_days_90_min: int = 20
    payments_90d_min: int = 5

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def unmet_conditions(conditions: CreditConditions, candidate: Candidate) -> tuple[str, ...]:
    """The activity conditions the candidate fails; empty when all are met."""
    unmet: list[str] = []
    if candidate.months_active < conditions.months_active_min:
        unmet.append(BELOW_MONTHS_ACTIVE)
    if candidate.active_days_90 < conditions.active_days_90_min:
        unmet.append(BELOW_ACTIVE_DAYS)
    if candidate.payments_90d < conditions.payments_90d_min:
        unmet.append(BELOW_PAYMENTS)
    return tuple(unmet)


def remaining_quota(daily_quota: int, invited_today: int) -> int:
    """How many more the channel may invite on the business date."""
    assert daily_quota >= 0 and invited_today >= 0
    return max(0, daily_quota - invited_today)


def sample(eligible: Sequence[str], k: int, *, seed: int) -> list[str]:
    """A seeded random sample of at most ``k`` open ids, reproducible for the same inputs.

    The eligible ids are sorted first, so the caller's order (a dict, a query without ORDER BY)
    never changes who is drawn. The result is sorted too.
    """
    assert k >= 0
    ordered = sorted(set(eligible))
    if k >= len(ordered):
        return ordered
    return sorted(random.Random(seed).sample(ordered, k))
