"""How a simulated person repays, deterministically: the same person, dates and seed always give
the same answer, so a simulated portfolio can be replayed.

The model, driven by the person's true 12-month default probability ``pd_true``:

- **default**: with probability ``pd_true`` the person defaults on a line opened on ``since``; the
  default day is uniform over the 365 days that follow. From that day on, nothing is paid.
  (So about ``pd_true`` of the people given a line default within a year, as in ``bad``.)
- **lateness**: before that (or never defaulting), each installment is paid late, independently,
  with probability ``min(0.5, LATE_FACTOR × pd_true)``: riskier people are late more often.

Draws come from BLAKE2b of ``(seed, person_id, what)``, not from a shared generator, so asking
about one installment never changes the answer about another.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

from microloan.sim.person import Person

LATE_FACTOR = 0.5
DEFAULT_WINDOW_DAYS = 365


def _uniform(seed: int, person_id: int, *what: object) -> float:
    """A uniform number in [0, 1) fixed by its arguments."""
    key = ":".join(str(x) for x in (seed, person_id, *what)).encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def default_date(person: Person, *, since: date, seed: int) -> date | None:
    """The day ``person`` stops paying a line opened on ``since``; ``None``: not within a year."""
    if _uniform(seed, person.person_id, "default", since.toordinal()) >= person.pd_true:
        return None
    offset = int(
        _uniform(seed, person.person_id, "default_day", since.toordinal()) * DEFAULT_WINDOW_DAYS
    )
    return since + timedelta(days=offset)


def repays_on_time(person: Person, due_date: date, *, since: date, seed: int) -> bool:
    """Whether ``person`` pays the installment due on ``due_date`` by that date (see the module)."""
    assert due_date >= since
    stops = default_date(person, since=since, seed=seed)
    if stops is not None and due_date >= stops:
        return False
    late = min(0.5, LATE_FACTOR * person.pd_true)
    return _uniform(seed, person.person_id, "late", due_date.toordinal()) >= late
