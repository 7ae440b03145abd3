"""The HTTP API under load (issue 5): many borrowers' signed requests — reads, quotes, draws,
repayments and applications mixed — against ``microloan serve --workers N`` on PostgreSQL, and
the time the server takes to render each page.

Setup (untimed; progress on stderr): a fresh PostgreSQL database (``microloan_bench_api_<hex>``,
dropped at the end unless ``--keep-database``), migrated, its business clock at the synthetic
population's reference date (2026-11-23); a background book of ``--book`` open loans
(``seed-portfolio``'s bulk writer, so the tables have a lender's volume); a synthetic population
behind the simulated providers and the demo scorecard activated by maker-checker (so that an
application reaches the decision engine); ``--borrowers`` people invited and onboarded with
identity, phone, card and the three consents (``apply_bench``'s bulk onboarding: the rows the
onboarding service writes), each with an active credit line (the row ``grant_line`` writes);
``--repay-loans`` of them with an open loan drawn and disbursed through the service; and as
many more people onboarded without a line as the run's applications need (each applies once).
A fresh data key and fresh channel secrets are made for the run and given to the server.

Timed: the server (``microloan serve --workers N --no-demo``, a subprocess) is given a warm-up
run, then the measured run. Each run replays requests built and signed just before it (a fresh
nonce each, a unique Idempotency-Key for draws and repayments; see ``load/wrk.py``) with wrk over
``--connections`` keep-alive connections — a channel gateway's connection pool, carrying
requests of thousands of borrowers. The mix (``--mix``; default, per 100 requests):

    reads 60   GET /v1/me 10, /v1/me/line 15, /v1/loans 15, /v1/loans/{id} 15,
               /v1/loans/{id}/payoff 5
    quote 15   POST /v1/draws/quote
    draw 10    POST /v1/draws (accepted: 202, paid later by the worker on PostgreSQL)
    repay 10   POST /v1/repayments of ¥10 on an open loan (201)
    apply 5    POST /v1/applications (the decision: 201, approved, declined or review)

Reported: requests/s, latency p50/p90/p99/p99.9/max (wrk's, over all kinds), responses by
status (anything not 2xx is an error), requests sent by kind, CPU by process group (server,
wrk, the database's backends, other work: ``not_bench_cpu_fraction``), what the requests left in
the database (applications decided, loans accepted, repayments booked; ``ledger check`` unless
``--no-ledger-check``), then each page's server time (in this process, through the app, idle).
Targets: ≥ 1,000 requests/s, p99 ≤ 50 ms, no errors; every page ≤ 100 ms.

Prints one JSON object on stdout. Needs wrk (``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import latency_summary, machine_info, source_info
from apply_bench import _admin, eligible_rows, onboard_bulk, steps
from load import cpu, wrk
from load.server import Server, env_for

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGETS: dict[str, float] = {
    "requests_per_s": 1000,
    "latency_ms_p99": 50.0,
    "errors": 0,
    "page_ms_p95": 100.0,
}
# kind → default weight (per 100 requests)
MIX: dict[str, int] = {
    "me": 10,
    "me_line": 15,
    "loans": 15,
    "loan": 15,
    "payoff": 5,
    "quote": 15,
    "draw": 10,
    "repay": 10,
    "apply": 5,
}
READS = ("me", "me_line", "loans", "loan", "payoff")
LINE_LIMIT_FEN = 5_000_000  # ¥50,000 each borrower
DRAWS_PER_BORROWER = 15  # at most, over the whole run (max_open_loans is 20)
REPAY_FEN = 1_000  # ¥10
PAGE_RENDERS = 20
EXAMPLE_CODE = "7K2M-9QF3-PA1X-0D4R"  # the forms' example: well formed, not signed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--admin-url", default=DEFAULT_ADMIN_URL, help="PostgreSQL server")
    ap.add_argument("--keep-database", action="store_true", help="do not drop the bench database")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server processes")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured run")
    ap.add_argument("--warmup-seconds", type=float, default=10.0, help="untimed run before it")
    ap.add_argument(
        "--connections", type=int, default=16, help="wrk's keep-alive connections (a gateway's)"
    )
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument(
        "--max-rate",
        type=float,
        default=2500.0,
        help="requests/s the pre-built requests are sized for (a faster server runs out: "
        "reported as exhausted)",
    )
    ap.add_argument("--borrowers", type=int, default=10_000, help="borrowers with a line")
    ap.add_argument("--repay-loans", type=int, default=1_000, help="open loans to repay on")
    ap.add_argument("--book", type=int, default=50_000, help="background open loans (0: none)")
    ap.add_argument("--population-size", type=int, default=None, help="default: enough")
    ap.add_argument("--mix", default=None, help="kind=weight,… (kinds: " + ", ".join(MIX) + ")")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--no-ledger-check", action="store_true", help="skip ledger check at the end")
    ap.add_argument("--no-pages", action="store_true", help="skip the page render times")
    ap.add_argument(
        "--kind-requests",
        type=int,
        default=30,
        help="after the load, requests of each kind alone through the app in this process, "
        "timed (0: skip)",
    )
    ap.add_argument("--no-load", action="store_true", help="only the page render times")
    args = ap.parse_args(argv)
    args.weights = parse_mix(ap, args.mix)
    if args.seconds + args.warmup_seconds > 240:
        ap.error("a request is signed for 300 s: keep --seconds + --warmup-seconds ≤ 240")
    if args.repay_loans > args.borrowers:
        ap.error("--repay-loans must not exceed --borrowers")
    return args


def parse_mix(ap: argparse.ArgumentParser, text: str | None) -> dict[str, int]:
    if not text:
        return dict(MIX)
    weights = dict.fromkeys(MIX, 0)
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        if kind.strip() not in MIX or not weight.strip().isdigit():
            ap.error(f"--mix: {part!r} is not kind=weight with a kind of {', '.join(MIX)}")
        weights[kind.strip()] = int(weight)
    if not any(weights.values()):
        ap.error("--mix: every weight is 0")
    return weights


# ---------------------------------------------------------------------------------------------
# Setup


@dataclass
class Borrower:
    customer_id: int
    channel: str
    open_id: str
    device_id: str
    loan_id: int | None = None  # an open loan to read and repay
    loan_principal_fen: int = 0


@dataclass
class Population:
    """Who the requests are from; what the server needs to know (its environment)."""

    url: str
    db_name: str
    env: dict[str, str]
    secrets: dict[str, bytes]
    on: date
    borrowers: list[Borrower]
    applicants: list[Borrower]
    setup_s: dict[str, float] = field(default_factory=dict)
    codes: list[str] = field(default_factory=list)  # issued invitation codes (invite_bench)


def fresh_database(admin_url: str, prefix: str) -> tuple[str, str]:
    import sqlalchemy as sa

    from microloan.store.db import normalise_url

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    _admin(admin_url, f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(normalise_url(admin_url)).set(database=name)
    return url.render_as_string(hide_password=False), name


def drop_database(admin_url: str, name: str) -> None:
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def platform_for(url: str, env: dict[str, str], *, pool_size: int = 2) -> Any:
    from microloan.service.platform import Platform
    from microloan.settings import Settings

    settings = Settings(
        data_key=env["MICROLOAN_DATA_KEY"],
        gateway_secrets=json.loads(env["MICROLOAN_GATEWAY_SECRETS"]),
        population_path=env["MICROLOAN_POPULATION_PATH"],
    )
    return Platform.connect(url, settings=settings, pool_size=pool_size)


def set_up(
    url: str,
    db_name: str,
    folder: Path,
    args: argparse.Namespace,
    applicants: int,
    step: Callable[[str, int | None], Callable[[int], None]],
) -> tuple[Population, Any, Any]:
    """The database, the population and the people: (population, platform, world)."""
    from microloan.access.crypto import new_key_text
    from microloan.providers.simulated import SimulatedWorld
    from microloan.service.admin import init_db
    from microloan.service.clock import set_clock
    from microloan.service.demo_access import activate_demo_model
    from microloan.service.providers import from_world
    from microloan.service.seed import seed_portfolio
    from microloan.sim import population

    seconds: dict[str, float] = {}
    on = population.REFERENCE_DATE
    channel_secrets = {c: os.urandom(32) for c in ("wechat", "qq")}
    parquet = folder / "population.parquet"
    env = env_for(
        {
            "database_url": url,
            "data_key": new_key_text(),
            "gateway_secrets": json.dumps(
                {c: base64.b64encode(s).decode() for c, s in channel_secrets.items()}
            ),
            "population_path": parquet,
        }
    )
    p = platform_for(url, env)
    t = time.perf_counter()
    step("database: migrate, clock", None)
    init_db(p)
    p.transaction(lambda conn: set_clock(conn, on, p.now))
    if args.book:
        advance = step(f"background book: {args.book:,} loans", args.book)
        seed_portfolio(p, args.book, seed=args.seed, progress=lambda done, _t: advance(0))
    seconds["database_and_book"] = time.perf_counter() - t
    t = time.perf_counter()
    wanted = args.borrowers + applicants
    size = args.population_size or max(20_000, 2 * wanted)
    step(f"population: {size:,} people, demo scorecard", None)
    population.write(population.generate(size, args.seed), parquet)
    world = SimulatedWorld.load(parquet).warm()
    p.use_providers(from_world(world))
    activate_demo_model(p)
    seconds["population_and_scorecard"] = time.perf_counter() - t
    t = time.perf_counter()
    s = p.settings
    rows = eligible_rows(world, on, wanted, s.age_min, s.age_max)
    advance = step(f"onboarding {wanted:,} people", wanted)
    onboarded = onboard_bulk(p, world, rows, on, advance)
    people = []
    for (cid, channel), row in zip(onboarded, rows, strict=True):
        person = world.person_at(row)
        open_id = person.open_id(channel)
        assert open_id is not None, "onboarded through their primary channel"
        people.append(Borrower(cid, channel, open_id, person.device_id))
    borrowers, waiting = people[: args.borrowers], people[args.borrowers :]
    step(f"lines for {len(borrowers):,} borrowers", None)
    grant_lines(p, [b.customer_id for b in borrowers], random.Random(args.seed))
    advance = step(f"{args.repay_loans:,} open loans to repay", args.repay_loans)
    open_loans(p, borrowers[: args.repay_loans], random.Random(args.seed + 1), advance)
    seconds["people"] = time.perf_counter() - t
    if p.is_postgres:
        p.transaction(lambda conn: conn.exec_driver_sql("ANALYZE"))
    made = Population(url, db_name, env, channel_secrets, on, borrowers, waiting)
    made.setup_s = {k: round(v, 2) for k, v in seconds.items()}
    return made, p, world


def grant_lines(p: Any, customers: list[int], rng: random.Random) -> None:
    """An active line for each customer: the row ``lending.grant_line`` writes (checked against
    the service for the first customer), in bulk."""
    from microloan.domain.rates import BAND_MAX_UNITS, BAND_MIN_UNITS, MICRO_STEP_UNITS, DailyRate
    from microloan.service.lending import grant_line
    from microloan.store.schema import credit_line

    def rate() -> DailyRate:
        low, high = BAND_MIN_UNITS // MICRO_STEP_UNITS, BAND_MAX_UNITS // MICRO_STEP_UNITS
        return DailyRate(rng.randint(low, high) * MICRO_STEP_UNITS)

    grant_line(p, customers[0], LINE_LIMIT_FEN, rate())
    now = p.now()
    rows = [
        {
            "customer_id": cid,
            "status": "active",
            "outstanding_principal_fen": 0,
            "pending_principal_fen": 0,
            "open_loans": 0,
            "overdue_blocked": False,
            "limit_fen": LINE_LIMIT_FEN,
            "rate_units": rate().units,
            "updated_at": now,
        }
        for cid in customers[1:]
    ]
    for i in range(0, len(rows), 2000):
        p.transaction(
            lambda conn, part=rows[i : i + 2000]: conn.execute(credit_line.insert(), part)
        )


def open_loans(
    p: Any, borrowers: list[Borrower], rng: random.Random, advance: Callable[[int], None]
) -> None:
    """One loan each, drawn and disbursed through the service (open, repayable at once)."""
    from microloan.domain.schedule import Method
    from microloan.service.lending import draw

    terms = tuple(p.settings.terms)
    for b in borrowers:
        amount = rng.randint(30, 100) * 10_000  # ¥3,000–10,000
        out = draw(
            p,
            b.customer_id,
            amount,
            rng.choice(terms),
            rng.choice(list(Method)),
            f"bench-open-{b.customer_id}",
        )
        if out.get("status") != "open":
            raise RuntimeError(f"a setup loan did not open: {out}")
        b.loan_id, b.loan_principal_fen = int(out["loan_id"]), amount
        advance(1)


# ---------------------------------------------------------------------------------------------
# Requests


def raw_request(
    method: str, path: str, host: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Traffic:
    """Signed borrower requests of the mix, each usable once (fresh nonce and key)."""

    def __init__(self, made: Population, weights: dict[str, int], seed: int) -> None:
        from microloan.api.gateway import signed_headers
        from microloan.settings import Settings

        self.sign = signed_headers
        self.made = made
        self.rng = random.Random(seed)
        self.kinds = [k for k, w in weights.items() if w]
        self.weights = [weights[k] for k in self.kinds]
        self.terms = tuple(Settings().terms)
        self.with_loans = [b for b in made.borrowers if b.loan_id is not None]
        self.applicants = list(made.applicants)
        self.draws: Counter[int] = Counter()
        self.repaid_fen: Counter[int] = Counter()
        self.next_drawer = 0
        self.n = 0

    def build(self, count: int, host: str) -> tuple[list[bytes], list[str]]:
        kinds = self.rng.choices(self.kinds, self.weights, k=count)
        return [self.one(kind, host) for kind in kinds], kinds

    def _signed(
        self, b: Borrower, method: str, path: str, host: str, body: Any = None, *, key: bool = False
    ) -> bytes:
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = self.sign(self.made.secrets[b.channel], method, path, b.channel, b.open_id, data)
        if key:
            self.n += 1
            headers["Idempotency-Key"] = f"bench-{os.getpid()}-{self.n}"
        return raw_request(method, path, host, headers, data)

    def one(self, kind: str, host: str) -> bytes:
        rng = self.rng
        if kind in ("loan", "payoff", "repay"):
            b = self._repayable() if kind == "repay" else rng.choice(self.with_loans)
        else:
            b = rng.choice(self.made.borrowers)
        if kind == "me":
            return self._signed(b, "GET", "/v1/me", host)
        if kind == "me_line":
            return self._signed(b, "GET", "/v1/me/line", host)
        if kind == "loans":
            return self._signed(b, "GET", "/v1/loans", host)
        if kind == "loan":
            return self._signed(b, "GET", f"/v1/loans/{b.loan_id}", host)
        if kind == "payoff":
            return self._signed(b, "GET", f"/v1/loans/{b.loan_id}/payoff", host)
        if kind == "quote":
            return self._signed(b, "POST", "/v1/draws/quote", host, self._draw_body())
        if kind == "draw":
            return self._signed(
                self._drawer(), "POST", "/v1/draws", host, self._draw_body(), key=True
            )
        if kind == "repay":
            body = {"amount": f"{REPAY_FEN // 100}.00", "loan_id": b.loan_id}
            return self._signed(b, "POST", "/v1/repayments", host, body, key=True)
        if kind == "apply":
            if not self.applicants:
                raise SystemExit("out of applicants: the request files outgrew the setup")
            a = self.applicants.pop()
            return self._signed(a, "POST", "/v1/applications", host, {"device_id": a.device_id})
        raise AssertionError(kind)

    def _draw_body(self) -> dict[str, Any]:
        return {
            "amount": f"{self.rng.randint(1, 20) * 100}.00",  # ¥100–2,000
            "term_months": self.rng.choice(self.terms),
            "method": self.rng.choice(("equal_principal", "equal_installment")),
        }

    def _drawer(self) -> Borrower:
        borrowers = self.made.borrowers
        for _ in range(len(borrowers)):
            b = borrowers[self.next_drawer % len(borrowers)]
            self.next_drawer += 1
            if self.draws[b.customer_id] < DRAWS_PER_BORROWER:
                self.draws[b.customer_id] += 1
                return b
        raise SystemExit("every borrower drew their share: raise --borrowers")

    def _repayable(self) -> Borrower:
        for _ in range(100):
            b = self.rng.choice(self.with_loans)
            if self.repaid_fen[b.customer_id] + REPAY_FEN <= b.loan_principal_fen // 2:
                self.repaid_fen[b.customer_id] += REPAY_FEN
                return b
        raise SystemExit("the loans to repay are half repaid: raise --repay-loans")


# ---------------------------------------------------------------------------------------------
# Runs


def requests_for(args: argparse.Namespace, seconds: float) -> int:
    return max(1000, math.ceil(float(args.max_rate) * seconds))


def applicants_needed(args: argparse.Namespace) -> int:
    share = args.weights["apply"] / sum(args.weights.values())
    total = requests_for(args, args.seconds) + requests_for(args, args.warmup_seconds)
    # the kinds are drawn at random: leave room for a few standard deviations
    mean = total * share
    alone = args.kind_requests + 3  # the apply requests timed alone afterwards
    return math.ceil(mean + 5 * math.sqrt(mean) + 10) + alone if share else 0


@dataclass
class Prepared:
    """Requests built, signed and written for wrk: where, and the kind of each."""

    folder: Path
    kinds: list[str]
    build_s: float


def prepare_load(
    server: Server,
    traffic: Traffic,
    folder: Path,
    args: argparse.Namespace,
    seconds: float,
    label: str,
) -> Prepared:
    """Build and sign the requests of a run of ``seconds`` at ``--max-rate``, for wrk."""
    t = time.perf_counter()
    requests, kinds = traffic.build(requests_for(args, seconds), server.host)
    build_s = time.perf_counter() - t
    where = folder / label
    wrk.write_requests(where, args.threads, requests)
    return Prepared(where, kinds, round(build_s, 2))


def execute_load(
    server: Server, prepared: Prepared, args: argparse.Namespace, seconds: float
) -> dict[str, Any]:
    """Replay prepared requests with wrk for ``seconds``; its figures and what was sent."""
    report, _ = wrk.run(
        server.url,
        prepared.folder,
        server.host,
        threads=args.threads,
        connections=args.connections,
        seconds=seconds,
    )
    out = wrk.summarise(report)
    sent = wrk.sent_prefix(report, args.threads, len(prepared.kinds))
    out["sent_by_kind"] = dict(Counter(prepared.kinds[i] for i in sent))
    out["requests_built"] = len(prepared.kinds)
    out["build_and_sign_s"] = prepared.build_s
    for path in prepared.folder.iterdir():
        path.unlink()
    return out


def run_load(
    server: Server,
    traffic: Traffic,
    folder: Path,
    args: argparse.Namespace,
    seconds: float,
    label: str,
) -> dict[str, Any]:
    """A run of the borrower load alone, with the CPU each group used."""
    prepared = prepare_load(server, traffic, folder, args, seconds, label)
    meter = cpu.Meter(server.pids, traffic.made.db_name)
    meter.start()
    t = time.perf_counter()
    out = execute_load(server, prepared, args, seconds)
    out["machine_cpu"] = meter.stop(time.perf_counter() - t, out["responses"])
    return out


def database_effects(p: Any, started: Any) -> dict[str, Any]:
    """What the requests left: decisions (made after ``started``), loans and repayments
    through the API (their keys are ``api:<customer>:<header>``)."""
    import sqlalchemy as sa

    from microloan.store.schema import decision, idempotency, loan, repayment

    with p.engine.connect() as conn:
        decisions = dict(
            conn.execute(
                sa.select(decision.c.outcome, sa.func.count())
                .where(decision.c.created_at >= started)
                .group_by(decision.c.outcome)
            ).all()
        )
        keys = conn.execute(
            sa.select(idempotency.c.operation, sa.func.count())
            .where(idempotency.c.key.like("api:%"), idempotency.c.response != "")
            .group_by(idempotency.c.operation)
        ).all()
        loans = dict(
            conn.execute(
                sa.select(loan.c.status, sa.func.count())
                .where(loan.c.idempotency_key.like("api:%"))
                .group_by(loan.c.status)
            ).all()
        )
        repayments = conn.execute(
            sa.select(sa.func.count()).where(repayment.c.idempotency_key.like("api:%"))
        ).scalar_one()
    return {
        "decisions_by_outcome": {str(k): int(v) for k, v in decisions.items()},
        "answered_keys_by_operation": {str(k): int(v) for k, v in keys},
        "loans_accepted_by_status": {str(k): int(v) for k, v in loans.items()},
        "repayments": int(repayments),
    }


# ---------------------------------------------------------------------------------------------
# Each kind alone, in this process through the app: where the server's time goes


def kind_times(p: Any, made: Population, traffic: Traffic, count: int) -> dict[str, Any]:
    """``count`` requests of each kind, one at a time, straight into the app in this process
    (ASGI: no HTTP, no client library, no other load): the server's wall time (p50/p95 ms) and
    CPU time (ms, its thread pool's included) per request."""
    import asyncio

    from microloan.api.app import create_app

    app = create_app(p)
    loop = asyncio.new_event_loop()
    out: dict[str, Any] = {}
    try:
        for kind in traffic.kinds:
            requests = [traffic.one(kind, "bench") for _ in range(count + 3)]
            times: list[float] = []
            statuses: Counter[int] = Counter()
            cpu_s = 0.0
            for i, raw in enumerate(requests):
                t, c = time.perf_counter(), time.process_time()
                status = loop.run_until_complete(_call_app(app, raw))
                if i >= 3:  # the first few warm the caches and the pool
                    times.append((time.perf_counter() - t) * 1000)
                    cpu_s += time.process_time() - c
                    statuses[status] += 1
            summary = latency_summary(times)
            out[kind] = {
                "latency_ms_p50": summary["latency_ms_p50"],
                "latency_ms_p95": summary["latency_ms_p95"],
                "cpu_ms": round(1000 * cpu_s / count, 3),
                "statuses": {str(k): v for k, v in sorted(statuses.items())},
            }
    finally:
        loop.close()
    return out


async def _call_app(app: Any, raw: bytes) -> int:
    """One raw HTTP/1.1 request through the ASGI app; its status."""
    import asyncio

    head, _, body = raw.partition(b"\r\n\r\n")
    first, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = first.split(" ")
    path, _, query = target.partition("?")
    headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in (line.split(": ", 1) for line in lines)
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }
    given = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal given
        if given:  # nothing more will come; the response is sent before this matters
            await asyncio.sleep(3600)
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


# ---------------------------------------------------------------------------------------------
# Pages: the server's time for each, in this process through the app (database included)


def page_times(p: Any, made: Population, *, code: str | None = None) -> dict[str, Any]:
    """Render each page ``PAGE_RENDERS`` times (after two untimed); p50/p95/max ms by page."""
    from fastapi.testclient import TestClient

    from microloan.api.app import create_app

    limits = {"rate_limit_public": "1000000/minute", "rate_limit_borrower": "1000000/minute"}
    p.settings = p.settings.model_copy(update={**limits, "demo_login": True})
    client = TestClient(create_app(p))
    b = next(x for x in made.borrowers if x.loan_id is not None)
    forged = None if code is None else ("1" if code[0] != "1" else "2") + code[1:]
    public = ["/", "/check", "/?lang=en&mode=elderly", f"/r/{EXAMPLE_CODE}"]
    if code is not None:
        public += [f"/check?code={code}", f"/r/{code}", f"/r/{forged}", f"/r/{code}?lang=en"]
    out: dict[str, Any] = {"public": _time_pages(client, public)}
    login = client.post("/app/login", data={"channel": b.channel, "open_id": b.open_id})
    app_pages = ["/app", "/app/consents", "/app/draw", "/app/loans", f"/app/loans/{b.loan_id}"]
    app_pages += ["/app/repay", "/app/draw/quote?amount=1000&term=12"]
    out["app"] = {"login_status": login.status_code, **_time_pages(client, app_pages)}
    out["console"] = _console_pages(p, client, b)
    timed = [v for group in out.values() for k, v in group.items() if isinstance(v, dict)]
    worst = max((v["latency_ms_p95"] or 0 for v in timed), default=0)
    out["worst_page_ms_p95"] = worst
    out["statuses_not_ok"] = {
        k: v["status"]
        for g in out.values()
        if isinstance(g, dict)
        for k, v in g.items()
        if isinstance(v, dict) and v["status"] >= 400
    }
    return out


def _console_pages(p: Any, client: Any, b: Borrower) -> dict[str, Any]:
    """Signed in as an administrator; the portfolio page needs a closed date with figures: the
    clock moves a day on and the end of day runs first (after the load: nothing else waits)."""
    from datetime import timedelta

    from microloan.service import eod, operators
    from microloan.service.clock import read_clock, set_clock

    with p.engine.connect() as conn:
        day = read_clock(conn, p.now).open_date
    p.transaction(lambda conn: set_clock(conn, day + timedelta(days=1), p.now))
    eod.run_eod(p)

    password = "bench-console-passw0rd"
    operators.create_operator(p, "bench_admin", password, ["administrator"])
    form = client.get("/console/login")
    found = re.search(r'name="csrf"\s+value="([^"]+)"', form.text)
    data = {"username": "bench_admin", "password": password, "csrf": found[1] if found else ""}
    login = client.post("/console/login", data=data, follow_redirects=False)
    pages = [
        "/console",
        "/console/customers?q=" + str(b.customer_id),
        f"/console/customers/{b.customer_id}",
        f"/console/loans/{b.loan_id}",
        "/console/reviews",
        "/console/proposals",
        "/console/write-offs",
        "/console/eod",
        "/console/audit",
        "/console/operators",
        "/console/portfolio",
    ]
    return {"login_status": login.status_code, **_time_pages(client, pages)}


def _time_pages(client: Any, paths: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in paths:
        status = 0
        times: list[float] = []
        for i in range(PAGE_RENDERS + 2):
            t = time.perf_counter()
            r = client.get(path, follow_redirects=False)
            if i >= 2:
                times.append((time.perf_counter() - t) * 1000)
            status = r.status_code
        summary = latency_summary(times)
        out[path] = {
            "status": status,
            "latency_ms_p50": summary["latency_ms_p50"],
            "latency_ms_p95": summary["latency_ms_p95"],
            "latency_ms_max": summary["latency_ms_max"],
        }
    return out


# ---------------------------------------------------------------------------------------------
# Main


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wrk_path = wrk.require_wrk()
    url, db_name = fresh_database(args.admin_url, "microloan_bench_api")
    try:
        with tempfile.TemporaryDirectory(prefix="api_bench_") as tmp:
            out = run(url, db_name, Path(tmp), args)
            out["load_generator"] = {"tool": wrk.wrk_version(wrk_path), **out["load_generator"]}
    finally:
        if not args.keep_database:
            drop_database(args.admin_url, db_name)
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def run(url: str, db_name: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    with steps() as step:
        made, p, _world = set_up(url, db_name, folder, args, applicants_needed(args), step)
        load: dict[str, Any] = {}
        effects = ledger = None
        started = p.now()
        traffic = Traffic(made, args.weights, args.seed)
        if not args.no_load:
            step(f"server: {args.workers} workers", None)
            with Server(made.env, workers=args.workers, log=folder / "server.log") as server:
                load["server_start_s"] = server.start_s
                step(f"warm-up: {args.warmup_seconds:g} s", None)
                load["warm_up"] = run_load(
                    server, traffic, folder, args, args.warmup_seconds, "warm"
                )
                step(f"measured: {args.seconds:g} s", None)
                load["measured"] = run_load(server, traffic, folder, args, args.seconds, "run")
            tail = (folder / "server.log").read_text(errors="replace").splitlines()[-20:]
            load["server_log_tail"] = tail
            step("database effects, ledger check", None)
            effects = database_effects(p, started)
            if not args.no_ledger_check:
                from microloan.service.ledger_check import check_ledger

                ledger = check_ledger(p)
                ledger = {k: ledger[k] for k in ("ok", "loans_checked") if k in ledger} | {
                    "problems": ledger.get("problems", [])[:5]
                }
        by_kind = None
        if args.kind_requests:
            step(f"each kind alone: {args.kind_requests} requests", None)
            by_kind = kind_times(p, made, traffic, args.kind_requests)
        pages = None
        if not args.no_pages:
            step("pages", None)
            pages = page_times(p, made)
    p.dispose()
    out = report(args, made, load, effects, ledger, pages)
    out["server_time_by_kind"] = by_kind
    return out


def report(
    args: argparse.Namespace,
    made: Population,
    load: dict[str, Any],
    effects: dict[str, Any] | None,
    ledger: dict[str, Any] | None,
    pages: dict[str, Any] | None,
) -> dict[str, Any]:
    passed: dict[str, bool] = {}
    measured = load.get("measured")
    if measured is not None:
        passed["requests_per_s"] = (measured["requests_per_s"] or 0) >= TARGETS["requests_per_s"]
        passed["latency_ms_p99"] = measured["latency_ms_p99"] <= TARGETS["latency_ms_p99"]
        passed["no_errors"] = measured["errors"] == 0
        passed["not_exhausted"] = not measured["exhausted"]
    if ledger is not None:
        passed["ledger_ok"] = bool(ledger.get("ok"))
    if pages is not None:
        passed["pages_ms_p95"] = pages["worst_page_ms_p95"] <= TARGETS["page_ms_p95"]
        passed["pages_ok"] = not pages["statuses_not_ok"]
    total = sum(args.weights.values())
    return {
        "benchmark": "api",
        "database": {"name": made.db_name, "kept": args.keep_database},
        "load": load,
        "database_effects": effects,
        "ledger_check": ledger,
        "pages": pages,
        "targets": TARGETS,
        "passed": passed,
        "pass": all(passed.values()),
        "run": {
            "mix_percent": {k: round(100 * w / total, 1) for k, w in args.weights.items() if w},
            "server_workers": args.workers,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup_seconds,
            "max_rate": args.max_rate,
            "borrowers": len(made.borrowers),
            "loans_to_repay": args.repay_loans,
            "applicants": len(made.applicants),
            "background_book_loans": args.book,
            "seed": args.seed,
            "setup_s": made.setup_s,
        },
        "load_generator": {"connections": args.connections, "threads": args.threads},
        "machine": {
            **machine_info(),
            "cpu_model": cpu_model(),
            "python_loop_ms": cpu.python_speed_ms(),
        },
        "source": source_info(),
    }


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


if __name__ == "__main__":
    raise SystemExit(main())
