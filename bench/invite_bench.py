"""The public invitation check and the referral landing page under load (issue 5): genuine and
forged codes, from thousands of client addresses, against ``microloan serve --workers N`` on
PostgreSQL — alone, or (``--with-api``) while ``api_bench.py``'s mixed borrower load runs on the
same server.

Setup (untimed; progress on stderr): a fresh PostgreSQL database (``microloan_bench_invite_<hex>``,
dropped at the end unless ``--keep-database``), migrated, the clock at the population's
reference date; a synthetic population; white-list batches (``invitations.run_whitelist``, the
service, one per channel and business date until ``--codes`` invited users hold a personal
code). With ``--with-api``, first everything ``api_bench.py`` sets up (borrowers with lines and
loans, applicants, the demo scorecard; its options with the same names apply).

Timed: a warm-up run, then the measured run. wrk sends, round and round, ``--distinct`` pre-built
requests: ``--api-share`` of them ``GET /v1/public/invitations/{code}`` (JSON), the rest
``GET /r/{code}`` (the landing page, HTML); ``--genuine-share`` of the codes issued ones, the
rest forged (a valid code with one character changed: the signature fails) or, one in six of
those, malformed. Each request comes from one of ``--addresses`` client addresses
(``X-Forwarded-For``, trusted from 127.0.0.1 as uvicorn does by default), so the per-address
public rate limit (``MICROLOAN_RATE_LIMIT_PUBLIC``, 600/minute) applies as it would to real
visitors and is not hit. With ``--with-api`` both loads run at once, each through its own wrk;
with ``--public-workers N`` the public load goes to a server group of its own (N processes of the
same app on another port, as the lender's load balancer routes the public pages to their own
instances) while the borrowers keep the ``--workers`` group.

Reported: as ``api_bench.py`` — requests/s, latency p50/p90/p99/p99.9/max, responses by status,
CPU by group — for the public load and (``--with-api``) the borrower load. Targets: public
≥ 3,000 requests/s with p99 ≤ 50 ms and no errors; with ``--with-api`` the borrower load keeps
its own (≥ 1,000 requests/s, p99 ≤ 50 ms, no errors).

Prints one JSON object on stdout. Needs wrk (``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import api_bench
from _common import machine_info, source_info
from apply_bench import steps
from load import cpu, wrk
from load.server import Server

TARGETS: dict[str, float] = {"requests_per_s": 3000, "latency_ms_p99": 50.0, "errors": 0}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--admin-url", default=api_bench.DEFAULT_ADMIN_URL, help="PostgreSQL server")
    ap.add_argument("--keep-database", action="store_true", help="do not drop the bench database")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server processes")
    ap.add_argument(
        "--public-workers",
        type=int,
        default=0,
        help="serve the public load from a group of its own of this many processes (the same "
        "app on another port, as a lender's load balancer would route the public pages); 0: "
        "the one group of --workers serves both loads",
    )
    ap.add_argument("--seconds", type=float, default=30.0, help="measured run")
    ap.add_argument("--warmup-seconds", type=float, default=10.0, help="untimed run before it")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (public load)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (public load)")
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offer about this many public requests/s (each connection paced: "
        "connections × 1000 / rate ms between requests); 0: as fast as answered (saturation)",
    )
    ap.add_argument("--codes", type=int, default=2000, help="invited users with a personal code")
    ap.add_argument("--distinct", type=int, default=20_000, help="distinct requests cycled over")
    ap.add_argument("--api-share", type=float, default=0.5, help="share of JSON checks")
    ap.add_argument("--genuine-share", type=float, default=0.7, help="share of issued codes")
    ap.add_argument("--addresses", type=int, default=4096, help="client addresses")
    ap.add_argument("--population-size", type=int, default=None, help="default: enough")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument(
        "--with-api", action="store_true", help="run api_bench's mixed borrower load at once"
    )
    group = ap.add_argument_group("with --with-api: the borrower load (as in api_bench.py)")
    group.add_argument("--api-connections", type=int, default=16)
    group.add_argument("--api-max-rate", type=float, default=2500.0)
    group.add_argument("--borrowers", type=int, default=10_000)
    group.add_argument("--repay-loans", type=int, default=1_000)
    group.add_argument("--book", type=int, default=50_000)
    group.add_argument("--mix", default=None)
    args = ap.parse_args(argv)
    if not 0 <= args.api_share <= 1 or not 0 <= args.genuine_share <= 1:
        ap.error("--api-share and --genuine-share are fractions (0–1)")
    if args.with_api and args.seconds + args.warmup_seconds > 240:
        ap.error("a borrower request is signed for 300 s: keep the runs ≤ 240 s in all")
    return args


def api_args(args: argparse.Namespace) -> argparse.Namespace:
    """api_bench's options for the borrower load that runs alongside."""
    argv = [
        "--workers",
        str(args.workers),
        "--seconds",
        str(args.seconds),
        "--warmup-seconds",
        str(args.warmup_seconds),
        "--connections",
        str(args.api_connections),
        "--max-rate",
        str(args.api_max_rate),
        "--borrowers",
        str(args.borrowers),
        "--repay-loans",
        str(args.repay_loans),
        "--book",
        str(args.book),
        "--seed",
        str(args.seed),
    ]
    if args.mix:
        argv += ["--mix", args.mix]
    if args.population_size:
        argv += ["--population-size", str(args.population_size)]
    return api_bench.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# Setup


def set_up_alone(
    url: str, db_name: str, folder: Path, args: argparse.Namespace, step: Any
) -> tuple[api_bench.Population, Any, Any]:
    """Database, clock and population: no borrowers (the public pages need none)."""
    from microloan.access.crypto import new_key_text
    from microloan.providers.simulated import SimulatedWorld
    from microloan.service.admin import init_db
    from microloan.service.clock import set_clock
    from microloan.service.providers import from_world
    from microloan.sim import population

    on = population.REFERENCE_DATE
    parquet = folder / "population.parquet"
    env = {
        "MICROLOAN_DATABASE_URL": url,
        "MICROLOAN_DATA_KEY": new_key_text(),
        "MICROLOAN_GATEWAY_SECRETS": "{}",
        "MICROLOAN_POPULATION_PATH": str(parquet),
    }
    p = api_bench.platform_for(url, env)
    t = time.perf_counter()
    step("database: migrate, clock", None)
    init_db(p)
    p.transaction(lambda conn: set_clock(conn, on, p.now))
    size = args.population_size or max(20_000, 4 * args.codes)
    step(f"population: {size:,} people", None)
    population.write(population.generate(size, args.seed), parquet)
    world = SimulatedWorld.load(parquet).warm()
    p.use_providers(from_world(world))
    made = api_bench.Population(url, db_name, env, {}, on, [], [])
    made.setup_s = {"database_and_population": round(time.perf_counter() - t, 2)}
    return made, p, world


def issue_codes(
    p: Any, world: Any, made: api_bench.Population, wanted: int, step: Any
) -> list[str]:
    """White-list batches, channel by channel and day by day back from the open date, until
    ``wanted`` invited users hold a personal code (people already onboarded are left out)."""
    import sqlalchemy as sa

    from microloan.service import invitations
    from microloan.service.providers import channel_candidates
    from microloan.store.schema import channel_identity

    t = time.perf_counter()
    step(f"white lists: {wanted:,} invited users with a code", None)
    taken = {b.open_id for b in (*made.borrowers, *made.applicants)}
    candidates = {
        ch: [c for c in channel_candidates(world, ch) if c.open_id not in taken]
        for ch in ("wechat", "qq")
    }

    def count() -> int:
        with p.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(channel_identity.c.referral_code.is_not(None))
                ).scalar_one()
            )

    for back in range(60):
        if count() >= wanted:
            break
        day = made.on - timedelta(days=back)
        for ch, people in candidates.items():
            invitations.run_whitelist(p, ch, people, seed=back, business_date=day)
    with p.engine.connect() as conn:
        codes = [
            str(c)
            for c in conn.execute(
                sa.select(channel_identity.c.referral_code)
                .where(channel_identity.c.referral_code.is_not(None))
                .order_by(channel_identity.c.referral_code)
                .limit(wanted)
            ).scalars()
        ]
    if len(codes) < wanted:
        raise SystemExit(f"only {len(codes)} codes issued: raise --population-size")
    made.setup_s["codes"] = round(time.perf_counter() - t, 2)
    return codes


# ---------------------------------------------------------------------------------------------
# Requests


def forge(code: str) -> str:
    """The code with its first character changed: another body under the same signature."""
    return ("1" if code[0] != "1" else "2") + code[1:]


def public_requests(
    codes: list[str], host: str, args: argparse.Namespace, rng: random.Random
) -> tuple[list[bytes], dict[str, int]]:
    """``--distinct`` requests of the mix; how many of each kind."""
    out: list[bytes] = []
    kinds: dict[str, int] = {}
    addresses = [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(args.addresses)]
    for _ in range(args.distinct):
        code = rng.choice(codes)
        if rng.random() < args.genuine_share:
            what = "genuine"
        elif rng.random() < 1 / 6:
            what, code = "malformed", code[:9]
        else:
            what, code = "forged", forge(code)
        if rng.random() < args.api_share:
            where, path = "check_api", f"/v1/public/invitations/{code}"
        else:
            where, path = "landing_page", f"/r/{code}"
        kinds[f"{where}:{what}"] = kinds.get(f"{where}:{what}", 0) + 1
        headers = f"Host: {host}\r\nX-Forwarded-For: {rng.choice(addresses)}\r\n"
        out.append(f"GET {path} HTTP/1.1\r\n{headers}\r\n".encode())
    return out, dict(sorted(kinds.items()))


# ---------------------------------------------------------------------------------------------
# Runs


class Background:
    """A wrk run in a thread: ``start()``, then ``join()`` for its report."""

    def __init__(self, run: Callable[[], dict[str, Any]]) -> None:
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, args=(run,), daemon=True)

    def _main(self, run: Callable[[], dict[str, Any]]) -> None:
        try:
            self.result = run()
        except BaseException as exc:  # reported by join
            self.error = exc

    def start(self) -> Background:
        self.thread.start()
        return self

    def join(self) -> dict[str, Any]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def run_phase(
    server: Server,
    public_server: Server,
    folder: Path,
    args: argparse.Namespace,
    seconds: float,
    label: str,
    db_name: str,
    traffic: api_bench.Traffic | None,
    api: argparse.Namespace | None,
) -> dict[str, Any]:
    """The public load for ``seconds`` (its files already in ``folder/public``) on
    ``public_server``, with the borrower load at the same time on ``server`` when ``traffic``
    is given (the two may be one server)."""
    borrowers = None
    if traffic is not None and api is not None:
        prepared = api_bench.prepare_load(server, traffic, folder, api, seconds, label)
    meter = cpu.Meter(lambda: server.pids() | public_server.pids(), db_name)
    meter.start()
    t = time.perf_counter()
    if traffic is not None and api is not None:
        borrowers = Background(lambda: api_bench.execute_load(server, prepared, api, seconds))
        borrowers.start()
    report, _ = wrk.run(
        public_server.url,
        folder / "public",
        public_server.host,
        threads=args.threads,
        connections=args.connections,
        seconds=seconds,
        cycle=True,
        pace_ms=args.connections * 1000 / args.rate if args.rate else 0.0,
    )
    api_out = borrowers.join() if borrowers is not None else None
    wall_s = time.perf_counter() - t
    public = wrk.summarise(report)
    answered = public["responses"] + (api_out["responses"] if api_out else 0)
    out: dict[str, Any] = {"public": public, "borrowers": api_out}
    out["machine_cpu"] = meter.stop(wall_s, answered)
    return out


# ---------------------------------------------------------------------------------------------
# Main


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wrk_path = wrk.require_wrk()
    prefix = "microloan_bench_invite"
    url, db_name = api_bench.fresh_database(args.admin_url, prefix)
    try:
        with tempfile.TemporaryDirectory(prefix="invite_bench_") as tmp:
            out = run(url, db_name, Path(tmp), args)
            out["load_generator"]["tool"] = wrk.wrk_version(wrk_path)
    finally:
        if not args.keep_database:
            api_bench.drop_database(args.admin_url, db_name)
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def run(url: str, db_name: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    api = api_args(args) if args.with_api else None
    with steps() as step:
        if api is not None:
            needed = api_bench.applicants_needed(api)
            made, p, world = api_bench.set_up(url, db_name, folder, api, needed, step)
        else:
            made, p, world = set_up_alone(url, db_name, folder, args, step)
        codes = issue_codes(p, world, made, args.codes, step)
        p.dispose()
        traffic = api_bench.Traffic(made, api.weights, args.seed) if api is not None else None
        phases: dict[str, Any] = {}
        step(f"server: {args.workers} workers", None)
        with contextlib.ExitStack() as servers:
            server = servers.enter_context(
                Server(made.env, workers=args.workers, log=folder / "server.log")
            )
            public_server = server
            if args.public_workers:
                step(f"public pages' server: {args.public_workers} workers", None)
                public_server = servers.enter_context(
                    Server(made.env, workers=args.public_workers, log=folder / "public.log")
                )
            requests, kinds = public_requests(
                codes, public_server.host, args, random.Random(args.seed)
            )
            wrk.write_requests(folder / "public", args.threads, requests)
            phases["server_start_s"] = server.start_s
            step(f"warm-up: {args.warmup_seconds:g} s", None)
            both = (server, public_server, folder, args)
            phases["warm_up"] = run_phase(*both, args.warmup_seconds, "warm", db_name, traffic, api)
            step(f"measured: {args.seconds:g} s", None)
            phases["measured"] = run_phase(*both, args.seconds, "run", db_name, traffic, api)
        phases["server_log_tail"] = (folder / "server.log").read_text().splitlines()[-20:]
    return report(args, made, phases, kinds)


def report(
    args: argparse.Namespace,
    made: api_bench.Population,
    phases: dict[str, Any],
    kinds: dict[str, int],
) -> dict[str, Any]:
    measured = phases["measured"]
    public = measured["public"]
    passed = {
        "public_requests_per_s": (public["requests_per_s"] or 0) >= TARGETS["requests_per_s"],
        "public_latency_ms_p99": public["latency_ms_p99"] <= TARGETS["latency_ms_p99"],
        "public_no_errors": public["errors"] == 0,
    }
    borrowers = measured["borrowers"]
    if borrowers is not None:
        api_targets = api_bench.TARGETS
        passed |= {
            "borrower_requests_per_s": (borrowers["requests_per_s"] or 0)
            >= api_targets["requests_per_s"],
            "borrower_latency_ms_p99": borrowers["latency_ms_p99"] <= api_targets["latency_ms_p99"],
            "borrower_no_errors": borrowers["errors"] == 0,
            "borrower_not_exhausted": not borrowers["exhausted"],
        }
    return {
        "benchmark": "invite",
        "database": {"name": made.db_name, "kept": args.keep_database},
        "load": phases,
        "targets": {"public": TARGETS, "borrowers": api_bench.TARGETS if args.with_api else None},
        "passed": passed,
        "pass": all(passed.values()),
        "run": {
            "public_requests_by_kind": kinds,
            "distinct_requests": args.distinct,
            "client_addresses": args.addresses,
            "codes": args.codes,
            "server_workers": args.workers,
            "public_server_workers": args.public_workers or None,
            "with_api": args.with_api,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup_seconds,
            "seed": args.seed,
            "setup_s": made.setup_s,
        },
        "load_generator": {
            "public": {
                "connections": args.connections,
                "threads": args.threads,
                "offered_rate_per_s": args.rate or None,
            },
            "borrowers": {"connections": args.api_connections} if args.with_api else None,
        },
        "machine": {
            **machine_info(),
            "cpu_model": api_bench.cpu_model(),
            "python_loop_ms": cpu.python_speed_ms(),
        },
        "source": source_info(),
    }


if __name__ == "__main__":
    raise SystemExit(main())
