"""Sustained draws and repayments against a database from several client processes.

Setup (untimed): a fresh database (PostgreSQL ``microloan_bench`` by default, or a SQLite file),
``init_db``, the business clock set to a fixed date, and each client process creating its own
customers, each with a credit line, through the service functions.

Timed phases, each ``--seconds`` long and separated by barriers so they never overlap:

1. draws: every process draws (``lending.draw``: checks, schedule, loan, installments,
   disbursement entry, line update, idempotency record — one transaction) round-robin over its
   own customers, so different customers never wait on each other;
2. repayments: every process repays a small amount (``--repay-yuan``) of each loan it drew,
   round-robin, with ``lending.repay(p, customer, loan_id, amount, key)``.

Per-operation latency is recorded around each service call. At the end the ledger check runs.
Prints one JSON object on stdout (diagnostics, such as a profile, go to stderr).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import multiprocessing as mp
import os
import pstats
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import latency_summary, machine_info, source_info
from load import cpu

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_DB_NAME = "microloan_bench"
TARGETS: dict[str, dict[str, Any]] = {
    "postgresql": {"ops_per_s": 1000, "latency_ms_p99": 25.0},
    "sqlite": {"ops_per_s": 300, "latency_ms_p99": None},
}
LINE_LIMIT_FEN = 20_000_000  # the largest line: 200,000 yuan
BARRIER_TIMEOUT_S = 600


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = ap.add_mutually_exclusive_group()
    where.add_argument(
        "--database",
        metavar="URL",
        help="use this database as it is (schema upgraded, nothing dropped)",
    )
    where.add_argument(
        "--sqlite",
        action="store_true",
        help="use a fresh SQLite file (see --sqlite-path) instead of PostgreSQL",
    )
    ap.add_argument(
        "--sqlite-path",
        type=Path,
        default=Path(tempfile.gettempdir()) / "microloan_bench.sqlite3",
        help="file for --sqlite, deleted first (default in the temp directory)",
    )
    ap.add_argument(
        "--admin-url",
        default=DEFAULT_ADMIN_URL,
        help=f"server to create the fresh database on (default {DEFAULT_ADMIN_URL})",
    )
    ap.add_argument(
        "--db-name",
        default=DEFAULT_DB_NAME,
        help=f"name of the fresh PostgreSQL database (default {DEFAULT_DB_NAME})",
    )
    ap.add_argument("--processes", type=int, default=4, help="client processes (default 4)")
    ap.add_argument(
        "--customers",
        type=int,
        default=2000,
        help="customers in all, split over the processes (default 2000; each takes "
        "at most 20 open loans, so this bounds the draws)",
    )
    ap.add_argument(
        "--seconds", type=float, default=10.0, help="length of each timed phase (default 10)"
    )
    ap.add_argument(
        "--pool-size",
        type=int,
        default=1,
        help="connection pool size per process (default 1; each process is serial)",
    )
    ap.add_argument("--min-yuan", type=int, default=100, help="smallest draw (default 100)")
    ap.add_argument("--max-yuan", type=int, default=5_000, help="largest draw (default 5000)")
    ap.add_argument(
        "--repay-yuan", type=int, default=10, help="amount of each repayment (default 10)"
    )
    ap.add_argument(
        "--date",
        type=date.fromisoformat,
        default=date(2025, 3, 3),
        help="business date the clock is set to (default 2025-03-03)",
    )
    ap.add_argument("--seed", type=int, default=20250303)
    ap.add_argument("--no-ledger-check", action="store_true", help="skip the final ledger check")
    ap.add_argument(
        "--profile",
        metavar="PATH",
        type=Path,
        help="profile process 0's timed phases with cProfile: write the stats to "
        "PATH and print the top 25 by cumulative time to stderr (that process "
        "runs slower, so the figures are then not the benchmark's)",
    )
    ap.add_argument(
        "--profile-timer",
        choices=("wall", "cpu"),
        default="wall",
        help="what --profile measures: wall-clock time (waits included, the "
        "default) or this process's CPU time",
    )
    args = ap.parse_args(argv)
    if args.processes < 1 or args.customers < args.processes or args.seconds <= 0:
        ap.error("need --processes ≥ 1, --customers ≥ --processes and --seconds > 0")
    if not 0 < args.repay_yuan < args.min_yuan:
        ap.error("--repay-yuan must be positive and below --min-yuan")
    return args


# ---------------------------------------------------------------------------------------------
# Database preparation (parent process)


def fresh_postgres(admin_url: str, name: str) -> str:
    """Drop and create ``name`` on the admin URL's server; the new database's URL."""
    import sqlalchemy as sa

    from microloan.store.db import normalise_url

    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote(name)
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
            conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
    finally:
        admin.dispose()
    return (
        sa.engine.make_url(normalise_url(admin_url))
        .set(database=name)
        .render_as_string(hide_password=False)
    )


def fresh_sqlite(path: Path) -> str:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def prepare(url: str, on: date) -> dict[str, Any]:
    """Schema, platform book and the clock at ``on``; facts about the server."""
    import sqlalchemy as sa

    from microloan.service.admin import init_db
    from microloan.service.clock import set_clock
    from microloan.service.platform import Platform

    p = Platform.connect(url, pool_size=1)
    try:
        init = init_db(p)
        p.transaction(lambda conn: set_clock(conn, on, p.now))
        with p.engine.connect() as conn:
            if p.is_postgres:
                version = conn.execute(sa.text("SELECT version()")).scalar_one()
            else:
                version = f"SQLite {sqlite3.sqlite_version}"
        return {"dialect": p.engine.dialect.name, "server": version, **init}
    finally:
        p.dispose()


# ---------------------------------------------------------------------------------------------
# Client process


def _error_key(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}:{code}" if isinstance(code, str) else type(exc).__name__


class Recorder:
    """Latencies of the successes and a count (and a few examples) of the failures."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.errors: Counter[str] = Counter()
        self.examples: list[str] = []
        self.cpu_s = 0.0

    def failed(self, exc: BaseException) -> None:
        self.errors[_error_key(exc)] += 1
        if len(self.examples) < 5:
            self.examples.append(str(exc)[:300])

    def as_dict(self) -> dict[str, Any]:
        return {
            "latencies_ms": self.latencies_ms,
            "errors": dict(self.errors),
            "examples": self.examples,
            "cpu_s": self.cpu_s,
        }


def _setup_customers(p: Any, index: int, count: int, rng: random.Random) -> list[int]:
    from microloan.domain.rates import BAND_MAX_UNITS, BAND_MIN_UNITS, MICRO_STEP_UNITS, DailyRate
    from microloan.service.lending import create_customer, grant_line

    customers = []
    for j in range(count):
        cid = create_customer(p, f"bench {index}-{j}")
        step = rng.randint(BAND_MIN_UNITS // MICRO_STEP_UNITS, BAND_MAX_UNITS // MICRO_STEP_UNITS)
        grant_line(p, cid, LINE_LIMIT_FEN, DailyRate(step * MICRO_STEP_UNITS))
        customers.append(cid)
    return customers


def _draw_phase(
    p: Any, opts: dict[str, Any], index: int, customers: list[int], rng: random.Random
) -> tuple[Recorder, list[list[int]], bool]:
    """Draw round-robin over ``customers`` for the phase; the loans as [customer, loan, left]."""
    from microloan.domain.schedule import Method
    from microloan.service.lending import draw

    rec = Recorder()
    terms = tuple(p.settings.terms)
    max_open = p.settings.max_open_loans
    open_loans = dict.fromkeys(customers, 0)
    loans: list[list[int]] = []
    tag = opts["tag"]
    methods = list(Method)
    i = 0
    exhausted = False
    cpu0 = time.process_time()
    deadline = time.perf_counter() + opts["seconds"]
    while time.perf_counter() < deadline:
        cid = customers[i % len(customers)]
        i += 1
        if open_loans[cid] >= max_open:
            if all(n >= max_open for n in open_loans.values()):
                exhausted = True
                break
            continue
        amount_fen = rng.randint(opts["min_yuan"], opts["max_yuan"]) * 100
        term, method = rng.choice(terms), rng.choice(methods)
        start = time.perf_counter_ns()
        try:
            out = draw(p, cid, amount_fen, term, method, f"bench-{tag}-{index}-d{i}")
        except Exception as exc:  # counted and reported, the run goes on
            rec.failed(exc)
            continue
        rec.latencies_ms.append((time.perf_counter_ns() - start) / 1e6)
        open_loans[cid] += 1
        loans.append([cid, int(out["loan_id"]), amount_fen])
    rec.cpu_s = time.process_time() - cpu0
    return rec, loans, exhausted


def _repay_phase(
    p: Any, opts: dict[str, Any], index: int, loans: list[list[int]]
) -> tuple[Recorder, bool]:
    """Repay ``--repay-yuan`` of each loan round-robin (never its whole principal)."""
    from microloan.service.lending import repay

    rec = Recorder()
    amount_fen = opts["repay_yuan"] * 100
    tag = opts["tag"]
    i = 0
    exhausted = not loans
    cpu0 = time.process_time()
    deadline = time.perf_counter() + opts["seconds"]
    while loans and time.perf_counter() < deadline:
        entry = loans[i % len(loans)]
        i += 1
        cid, loan_id, left_fen = entry
        if left_fen <= amount_fen:
            if all(e[2] <= amount_fen for e in loans):
                exhausted = True
                break
            continue
        start = time.perf_counter_ns()
        try:
            repay(p, cid, loan_id, amount_fen, f"bench-{tag}-{index}-r{i}")
        except Exception as exc:  # counted and reported, the run goes on
            rec.failed(exc)
            continue
        rec.latencies_ms.append((time.perf_counter_ns() - start) / 1e6)
        entry[2] -= amount_fen
    rec.cpu_s = time.process_time() - cpu0
    return rec, exhausted


def _warm_up(p: Any, customer_id: int, tag: str, index: int) -> None:
    """One untimed draw and repayment, so statement compilation is not in the figures."""
    from microloan.domain.schedule import Method
    from microloan.service.lending import draw, repay

    out = draw(
        p,
        customer_id,
        100_000,
        p.settings.terms[0],
        Method.EQUAL_PRINCIPAL,
        f"bench-{tag}-{index}-warm-d",
    )
    repay(p, customer_id, int(out["loan_id"]), 1_000, f"bench-{tag}-{index}-warm-r")


def worker(
    index: int, url: str, count: int, opts: dict[str, Any], barrier: Any, results: Any
) -> None:
    from microloan.service.platform import Platform

    report: dict[str, Any] = {"index": index, "pid": os.getpid()}
    try:
        p = Platform.connect(url, pool_size=opts["pool_size"])
        rng = random.Random(opts["seed"] * 1000 + index)
        t = time.perf_counter()
        customers = _setup_customers(p, index, count + 1, rng)
        _warm_up(p, customers.pop(), opts["tag"], index)
        report["setup_s"] = round(time.perf_counter() - t, 3)
        profiler = None
        if opts["profile"] and index == 0:
            timer = time.process_time if opts["profile_timer"] == "cpu" else time.perf_counter
            profiler = cProfile.Profile(timer)
        barrier.wait(BARRIER_TIMEOUT_S)
        if profiler is not None:
            profiler.enable()
        draws, loans, report["draws_exhausted"] = _draw_phase(p, opts, index, customers, rng)
        if profiler is not None:
            profiler.disable()
        barrier.wait(BARRIER_TIMEOUT_S)
        if profiler is not None:
            profiler.enable()
        repays, report["repays_exhausted"] = _repay_phase(p, opts, index, loans)
        if profiler is not None:
            profiler.disable()
        barrier.wait(BARRIER_TIMEOUT_S)
        barrier.wait(BARRIER_TIMEOUT_S)  # the parent has read the CPU counters of the backends
        if profiler is not None:
            _dump_profile(profiler, Path(opts["profile"]))
        report["draws"], report["repays"] = draws.as_dict(), repays.as_dict()
        p.dispose()
    except BaseException as exc:
        barrier.abort()
        report["crashed"] = f"{type(exc).__name__}: {exc}"[:2000]
    results.put(report)


def _dump_profile(profiler: cProfile.Profile, path: Path) -> None:
    profiler.dump_stats(str(path))
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    print(out.getvalue(), file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Parent: run, collect, report


_cpu_times = cpu.cpu_times  # (busy, total) jiffies of the whole machine


def _cpu_by_group(client_pids: set[int], db_name: str | None) -> dict[str, float]:
    """CPU seconds used so far by the bench clients, the backends serving the bench database,
    other PostgreSQL processes and everything else on this machine (``load.cpu.by_group``)."""
    return cpu.by_group({"clients": client_pids}, db_name)


def _cpu_delta(a: dict[str, float], b: dict[str, float], ops: int, wall_s: float) -> dict[str, Any]:
    """CPU used in a phase by group, per operation, and the share of the machine's capacity
    that went to work other than the benchmark (other sessions' load makes figures noisy)."""
    used = {k: round(b[k] - a[k], 2) for k in a if k in b}
    per_op = {k: round(1000 * v / ops, 3) for k, v in used.items() if k != "machine_busy"}
    out: dict[str, Any] = {"cpu_s": used, "cpu_ms_per_op": per_op if ops else None}
    if "machine_busy" in used and wall_s > 0:
        foreign_s = used["machine_busy"] - used["clients"] - used["postgres_backends"]
        capacity_s = (os.cpu_count() or 1) * wall_s
        out["not_bench_cpu_fraction"] = round(max(0.0, foreign_s) / capacity_s, 3)
    return out


def sa_url_database(url: str) -> str | None:
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    return parsed.database if parsed.get_backend_name() == "postgresql" else None


def _busy_fraction(a: tuple[int, int] | None, b: tuple[int, int] | None) -> float | None:
    if a is None or b is None or b[1] == a[1]:
        return None
    return round((b[0] - a[0]) / (b[1] - a[1]), 3)


def run_clients(url: str, args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(args.processes + 1)
    results = ctx.Queue()
    opts = {
        "seconds": args.seconds,
        "pool_size": args.pool_size,
        "min_yuan": args.min_yuan,
        "max_yuan": args.max_yuan,
        "repay_yuan": args.repay_yuan,
        "seed": args.seed,
        "tag": f"{int(time.time())}",
        "profile": str(args.profile) if args.profile else None,
        "profile_timer": args.profile_timer,
    }
    share, extra = divmod(args.customers, args.processes)
    procs = [
        ctx.Process(target=worker, args=(i, url, share + (i < extra), opts, barrier, results))
        for i in range(args.processes)
    ]
    t_setup = time.perf_counter()
    for proc in procs:
        proc.start()
    phases: dict[str, Any] = {}
    pids = {proc.pid for proc in procs if proc.pid is not None}
    db_name = sa_url_database(url)
    try:
        barrier.wait(BARRIER_TIMEOUT_S)
        t0, c0, g0 = time.perf_counter(), _cpu_times(), _cpu_by_group(pids, db_name)
        phases["setup_s"] = round(t0 - t_setup, 3)
        barrier.wait(BARRIER_TIMEOUT_S)
        t1, c1, g1 = time.perf_counter(), _cpu_times(), _cpu_by_group(pids, db_name)
        barrier.wait(BARRIER_TIMEOUT_S)
        t2, c2, g2 = time.perf_counter(), _cpu_times(), _cpu_by_group(pids, db_name)
        barrier.wait(BARRIER_TIMEOUT_S)
        phases.update(
            draws_s=t1 - t0,
            repays_s=t2 - t1,
            draws_machine_busy=_busy_fraction(c0, c1),
            repays_machine_busy=_busy_fraction(c1, c2),
            draws_cpu=(g0, g1),
            repays_cpu=(g1, g2),
        )
    except Exception as exc:  # a worker crashed: its report says why
        phases["broken"] = f"{type(exc).__name__}: {exc}"
    reports = [results.get(timeout=BARRIER_TIMEOUT_S) for _ in procs]
    for proc in procs:
        proc.join()
    return sorted(reports, key=lambda r: r["index"]), phases


def summarise(
    kind: str, reports: list[dict[str, Any]], wall_s: float | None, target: dict[str, Any]
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    examples: list[str] = []
    cpu_s = 0.0
    for r in reports:
        part = r.get(kind)
        if part is None:
            continue
        latencies.extend(part["latencies_ms"])
        errors.update(part["errors"])
        examples.extend(part["examples"])
        cpu_s += part["cpu_s"]
    stats = latency_summary(latencies)
    per_s = stats["count"] / wall_s if wall_s else 0.0
    p99 = stats["latency_ms_p99"]
    passed = {"throughput": per_s >= target["ops_per_s"]}
    if target["latency_ms_p99"] is not None:
        passed["latency_p99"] = p99 is not None and p99 <= target["latency_ms_p99"]
    return {
        "per_s": round(per_s, 1),
        **stats,
        "phase_s": round(wall_s or 0.0, 3),
        "client_cpu_ms_per_op": round(1000 * cpu_s / stats["count"], 3) if stats["count"] else None,
        "errors": sum(errors.values()),
        "errors_by_code": dict(errors),
        "error_examples": examples[:5],
        "per_process": [len(r[kind]["latencies_ms"]) if kind in r else None for r in reports],
        "passed": passed,
    }


def ledger_check(url: str) -> dict[str, Any]:
    from microloan.service.ledger_check import check_ledger
    from microloan.service.platform import Platform

    p = Platform.connect(url, pool_size=1)
    try:
        t = time.perf_counter()
        out = check_ledger(p)
        return {
            "ok": out["ok"],
            "loans_checked": out["loans_checked"],
            "problem_count": out["problem_count"],
            "problems": out["problems"][:10],
            "seconds": round(time.perf_counter() - t, 3),
        }
    finally:
        p.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.database:
        url = args.database
    elif args.sqlite:
        url = fresh_sqlite(args.sqlite_path)
    else:
        url = fresh_postgres(args.admin_url, args.db_name)
    database = prepare(url, args.date)
    target = TARGETS["postgresql" if database["dialect"] == "postgresql" else "sqlite"]
    reports, phases = run_clients(url, args)
    draws = summarise("draws", reports, phases.get("draws_s"), target)
    repays = summarise("repays", reports, phases.get("repays_s"), target)
    for name, figures in (("draws", draws), ("repays", repays)):
        if f"{name}_cpu" in phases:
            before, after = phases[f"{name}_cpu"]
            figures["machine_cpu"] = _cpu_delta(
                before, after, figures["count"], phases[f"{name}_s"]
            )
    ledger = None if args.no_ledger_check else ledger_check(url)
    crashed = [r["crashed"] for r in reports if "crashed" in r]
    passed = {
        **{f"draws_{k}": v for k, v in draws["passed"].items()},
        **{f"repays_{k}": v for k, v in repays["passed"].items()},
        "no_errors": draws["errors"] == 0 and repays["errors"] == 0 and not crashed,
    }
    if ledger is not None:
        passed["ledger_ok"] = ledger["ok"]
    print(
        json.dumps(
            {
                "benchmark": "draw_repay",
                "database": database,
                "draws": draws,
                "repayments": repays,
                "targets": {
                    "draws_per_s": target["ops_per_s"],
                    "repays_per_s": target["ops_per_s"],
                    "latency_ms_p99": target["latency_ms_p99"],
                },
                "passed": passed,
                "pass": all(passed.values()),
                "ledger_check": ledger,
                "run": {
                    "processes": args.processes,
                    "customers": args.customers,
                    "seconds_per_phase": args.seconds,
                    "pool_size": args.pool_size,
                    "draw_yuan_range": [args.min_yuan, args.max_yuan],
                    "repay_yuan": args.repay_yuan,
                    "business_date": args.date.isoformat(),
                    "seed": args.seed,
                    "profiled_process_0": args.profile_timer if args.profile else None,
                    "setup_s": phases.get("setup_s"),
                    "machine_busy_fraction": {
                        "draws": phases.get("draws_machine_busy"),
                        "repays": phases.get("repays_machine_busy"),
                    },
                    "exhausted": {
                        "draws": [r.get("draws_exhausted") for r in reports],
                        "repays": [r.get("repays_exhausted") for r in reports],
                    },
                    "crashed": crashed or None,
                    "broken": phases.get("broken"),
                },
                "machine": machine_info(),
                "source": source_info(),
            },
            indent=2,
        )
    )
    return 0 if not crashed else 1


if __name__ == "__main__":
    raise SystemExit(main())
