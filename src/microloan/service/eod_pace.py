"""End of day gives way to customers (servicing §1: money keeps moving while a date closes).

On PostgreSQL the run shares the machine with the borrowers' draws, repayments and queries:
its reads, its columns' arithmetic and its bulk writes take the CPU, and its write-ahead log is
flushed ahead of every customer's commit. While customers are active the run therefore does
one piece of work at a time (a chunk read and computed, a batch written; its two chunk threads
take turns) and rests after each for ``eod_yield`` times as long as the piece took: at 1.0 it
works half the time on one core at most, and customers have the machine to themselves the
other half. With nobody about (a night's run) it works at full speed on both threads.

"Customers are active" is read from ``pg_stat_activity``: a session of the platform serving
customers (``application_name`` "microloan", or the one the database URL names; the payment
worker's sessions are "microloan worker", the end of day's "microloan eod", and a monitor's or
an operator's ``psql`` has its own) on the same database, opened by another process than the
run's, that is running a statement or finished one within the last ``eod_yield_window_s``
seconds. The worker polls every second whatever customers do, so it does not count. The
answer is kept for a quarter of a second, so the probe costs one small query four times a
second at most. SQLite is written by one writer at a time and is not paced.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl
import sqlalchemy as sa

from microloan.service.platform import Platform
from microloan.store.db import session_name, session_pids

PROBE_EVERY_S = 0.25

_ACTIVE = sa.text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND backend_type = 'client backend'"
    " AND application_name = :customers"
    " AND pid <> pg_backend_pid() AND NOT (pid = ANY(:own))"
    " AND (state = 'active' OR state_change > clock_timestamp() - make_interval(secs => :window))"
)


class Pacer:
    """The run's pace: each piece of its work is done ``with pacer.piece():``; thread-safe."""

    def __init__(self, p: Platform) -> None:
        self.p = p
        self.factor = p.settings.eod_yield if p.is_postgres else 0.0
        self.window_s = p.settings.eod_yield_window_s
        self.customers = session_name(p.engine.url)  # the name of customers' sessions
        self.rested_s = 0.0
        self._lock = threading.Lock()
        self._probe = threading.Lock()
        self._turn = threading.Lock()  # the piece of work in flight while customers are active
        self._busy = False
        self._probed_at = float("-inf")

    def customers_active(self) -> bool:
        """Whether customers are active: asked at most every PROBE_EVERY_S, one thread asking
        while the others wait for its answer. Never, when the run does not give way."""
        if self.factor <= 0:
            return False
        with self._probe:
            if time.monotonic() - self._probed_at >= PROBE_EVERY_S:
                with self.p.engine.connect() as conn:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                    own = sorted(session_pids(self.p.engine))
                    params = {"own": own, "window": self.window_s, "customers": self.customers}
                    n = conn.execute(_ACTIVE, params).scalar_one()
                self._busy = bool(n)
                self._probed_at = time.monotonic()
            return self._busy

    def batches(self, frame: pl.DataFrame, size: int, busy_size: int) -> Iterator[pl.DataFrame]:
        """The frame in slices of ``size`` rows, or of ``busy_size`` while customers are active
        (asked before each slice)."""
        lo = 0
        while lo < frame.height:
            n = busy_size if self.customers_active() else size
            yield frame.slice(lo, n)
            lo += n

    @contextmanager
    def piece(self) -> Iterator[None]:
        """One piece of the run's work (a chunk read and computed, a batch written). While
        customers are active the pieces go one at a time, each followed by its rest, so that
        the run holds at most one core and leaves the machine to customers between pieces."""
        if not self.customers_active():
            yield
            return
        with self._turn:
            t0 = time.perf_counter()
            yield
            pause = (time.perf_counter() - t0) * self.factor
            time.sleep(pause)
            with self._lock:
                self.rested_s += pause
