"""End of day gives way to customers on PostgreSQL (service/eod_pace.py): it rests only while a
session of the platform other than its own is at work, never for a monitor's session."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import date

import polars as pl
import pytest
import sqlalchemy as sa

from microloan.service import eod
from microloan.service.eod_pace import Pacer
from microloan.service.platform import Platform
from microloan.store.db import session_name
from microloan.store.schema import eod_run

from .support import MakePlatform, draw, new_customer, set_date

pytestmark = pytest.mark.postgres

WINDOW_S = 0.3


@pytest.fixture
def backend() -> str:
    return "postgres"


def _paced(p: Platform, factor: float = 1.0) -> Platform:
    p.settings = p.settings.model_copy(update={"eod_yield": factor, "eod_yield_window_s": WINDOW_S})
    return p


@pytest.fixture
def pair(make_platform: MakePlatform) -> tuple[Platform, Platform]:
    """The run's platform and a customer's, two processes' pools on one database."""
    run = _paced(make_platform())
    customer = Platform.connect(run.engine.url.render_as_string(hide_password=False))
    yield run, customer  # type: ignore[misc]
    customer.dispose()


def _query(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def _quiet(pacer: Pacer) -> None:
    time.sleep(WINDOW_S + 0.1)
    pacer._probed_at = float("-inf")  # ask again now rather than in a quarter of a second


def test_customers_are_the_platforms_other_sessions_at_work_lately(
    pair: tuple[Platform, Platform],
) -> None:
    run, customer = pair
    pacer = Pacer(run)
    with run.engine.connect() as conn:  # the run's own sessions at work: not customers
        conn.execute(sa.text("SELECT 1"))
        _query(run.engine)
    assert pacer.customers_active() is False

    _query(customer.engine)
    _quiet(pacer)  # a statement finished more than the window ago
    assert pacer.customers_active() is False

    _query(customer.engine)
    pacer._probed_at = float("-inf")
    assert pacer.customers_active() is True

    worker = Platform.connect(run.engine.url.render_as_string(hide_password=False), role="worker")
    try:
        _quiet(pacer)
        _query(worker.engine)  # the payment worker polls whatever customers do
        pacer._probed_at = float("-inf")
        assert pacer.customers_active() is False
    finally:
        worker.dispose()

    monitor = sa.create_engine(
        run.engine.url.update_query_dict({"application_name": "monitor"}), poolclass=sa.NullPool
    )
    try:
        _quiet(pacer)
        _query(monitor)
        pacer._probed_at = float("-inf")
        assert pacer.customers_active() is False  # a monitor is not a customer
    finally:
        monitor.dispose()


def _piece(pacer: Pacer, work_s: float) -> float:
    t0 = time.perf_counter()
    with pacer.piece():
        time.sleep(work_s)
    return time.perf_counter() - t0


def test_a_piece_of_work_is_followed_by_a_rest_only_while_customers_are_active(
    pair: tuple[Platform, Platform],
) -> None:
    run, customer = pair
    pacer = Pacer(_paced(run, 2.0))
    assert _piece(pacer, 0.05) < 0.1 and pacer.rested_s == 0.0  # nobody about

    _query(customer.engine)
    pacer._probed_at = float("-inf")
    assert _piece(pacer, 0.05) >= 0.15  # the work, then twice as long at rest
    assert pacer.rested_s == pytest.approx(0.1, abs=0.02)

    never = Pacer(_paced(run, 0.0))
    _query(customer.engine)
    assert _piece(never, 0.05) < 0.1 and never.rested_s == 0.0


def test_while_customers_are_active_the_pieces_go_one_at_a_time(
    pair: tuple[Platform, Platform],
) -> None:
    run, customer = pair
    pacer = Pacer(_paced(run, 1.0))
    _query(customer.engine)
    pacer._probed_at = float("-inf")
    inside, most = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        with pacer.piece():
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.05)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(3)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1
    assert time.perf_counter() - t0 >= 0.3  # three pieces, each with its rest, in turn


def test_batches_are_smaller_while_customers_are_active(pair: tuple[Platform, Platform]) -> None:
    run, customer = pair
    pacer = Pacer(run)
    frame = pl.DataFrame({"loan_id": range(1, 11)})
    quiet = list(pacer.batches(frame, 4, 2))
    assert [b["loan_id"].to_list() for b in quiet] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    _query(customer.engine)
    pacer._probed_at = float("-inf")
    busy = [b.height for b in pacer.batches(frame, 4, 2)]
    assert busy == [2, 2, 2, 2, 2]


@pytest.fixture
def busy_customer(pair: tuple[Platform, Platform]) -> Iterator[None]:
    """A customer's session running statements the whole time."""
    _, customer = pair
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            with customer.engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_sleep(0.05)"))

    thread = threading.Thread(target=work)
    thread.start()
    yield
    stop.set()
    thread.join()


def _book(p: Platform) -> None:
    set_date(p, date(2026, 2, 1))
    for name in ("甲", "乙", "丙"):
        draw(p, new_customer(p, name=name), "1000", 3)
    set_date(p, date(2026, 2, 6))


def _rested(p: Platform) -> list[float]:
    with p.engine.connect() as conn:
        details = conn.execute(sa.select(eod_run.c.detail).order_by(eod_run.c.run_id)).scalars()
        return [json.loads(d)["seconds"].get("rested", 0.0) for d in details]


def test_a_run_with_customers_at_work_rests_and_books_the_same(
    pair: tuple[Platform, Platform], busy_customer: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = pair
    monkeypatch.setattr(eod, "CHUNK", 1)  # a chunk a loan: pieces of work to rest after
    _book(run)
    days = eod.run_eod(run)
    assert [d.reconciled for d in days] == [True] * 5
    rested = _rested(run)
    assert len(rested) == 5 and all(s > 0 for s in rested), rested


def test_a_run_with_nobody_about_does_not_rest(
    pair: tuple[Platform, Platform], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = pair
    monkeypatch.setattr(eod, "CHUNK", 1)
    _book(run)
    time.sleep(WINDOW_S + 0.1)  # the set-up's own sessions finished longer ago than the window
    eod.run_eod(run)
    assert _rested(run) == [0.0] * 5


def test_sessions_are_named_by_the_url_and_the_processs_role(
    pair: tuple[Platform, Platform],
) -> None:
    run, _ = pair
    url = run.engine.url
    lender = url.update_query_dict({"application_name": "lender"})
    assert (session_name(url), session_name(lender)) == ("microloan", "lender")

    def named(at: sa.URL, role: str | None = None) -> str:
        p = Platform.connect(at.render_as_string(hide_password=False), role=role)
        try:
            with p.engine.connect() as conn:
                return str(conn.execute(sa.text("SHOW application_name")).scalar_one())
        finally:
            p.dispose()

    assert named(url) == "microloan"
    assert named(url, "worker") == "microloan worker"
    assert named(lender, "eod") == "lender eod"
