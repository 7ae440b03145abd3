"""Credit decisions (issue 3): the decision in process, and ``apply`` end to end on a database.

Setup (untimed; progress on stderr): a fresh database (a PostgreSQL database with a unique name,
dropped afterwards, or a SQLite file), migrated with ``init_db`` and its business clock set to
the population's reference date; a synthetic population (``microloan.sim.population``) behind
the simulated providers; a scorecard trained on the population's training table with
``microloan.modeling.train`` (or the tests' hand-made one), registered and activated by
maker-checker; the people the population marks as blocked put on the blocked list; and
``--customers`` people onboarded with their consents — by default written in bulk, row for row
as the onboarding service writes them (``--onboarding service`` goes through the service
functions, slower).

Timed:

1. decision, in this process: for ``--contexts`` onboarded customers the platform's records are
   read once (``decisions.read_context``, timed as ``reads``); then, ``--decisions`` times in
   all, the providers are asked (``decisions.ask_providers``) and the decision itself runs —
   characteristics → score → policy (``decisions.judge``), target 1: p99 ≤ 5 ms.
2. apply: ``--processes`` client processes each call ``decisions.apply(p, customer, channel)``
   over their own customers (each customer applies once: a customer with a line cannot apply
   again), until every customer has applied, ``--applies`` is reached or ``--seconds`` pass;
   target 2 (PostgreSQL): ≥ 300 decisions/s with p99 ≤ 30 ms, no errors. Afterwards the database
   is checked: one ``apply`` decision per application, one line per approval, one review case
   per application sent to review.

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing as mp
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, latency_summary, machine_info, source_info

# the CPU accounting and the error recorder of the draw/repay benchmark, shared as they are
from draw_repay_bench import (
    Recorder,
    _busy_fraction,
    _cpu_by_group,
    _cpu_delta,
    _cpu_times,
    _dump_profile,
    fresh_sqlite,
    sa_url_database,
)

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGETS: dict[str, Any] = {
    "decision_ms_p99": 5.0,
    "postgresql": {"applies_per_s": 300, "latency_ms_p99": 30.0},
    "sqlite": {"applies_per_s": None, "latency_ms_p99": None},  # the issue sets none
}
BARRIER_TIMEOUT_S = 600
CONSENTS = ("credit_report", "sensitive_pi", "loan_agreement")
PASSWORD = "bench-passw0rd-not-secret"
BULK_CHUNK = 500  # customers per onboarding transaction


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    where = ap.add_mutually_exclusive_group()
    where.add_argument(
        "--database",
        metavar="URL",
        help="use this existing, empty database (migrated, nothing dropped) instead of a fresh "
        "PostgreSQL one",
    )
    where.add_argument(
        "--sqlite", action="store_true", help="use a fresh SQLite file instead of PostgreSQL"
    )
    ap.add_argument(
        "--sqlite-path",
        type=Path,
        default=Path(tempfile.gettempdir()) / "microloan_apply_bench.sqlite3",
        help="file for --sqlite (deleted first)",
    )
    ap.add_argument(
        "--admin-url",
        default=DEFAULT_ADMIN_URL,
        help="PostgreSQL server on which the fresh database (microloan_apply_<random>) is made",
    )
    ap.add_argument(
        "--keep-database", action="store_true", help="do not drop the fresh PostgreSQL database"
    )
    ap.add_argument("--customers", type=int, default=5000, help="customers onboarded")
    ap.add_argument("--processes", type=int, default=4, help="client processes for apply")
    ap.add_argument(
        "--seconds",
        type=float,
        default=30.0,
        help="longest apply phase (it ends sooner when every customer has applied)",
    )
    ap.add_argument(
        "--applies",
        type=int,
        default=None,
        help="applications in all; every customer when not given",
    )
    ap.add_argument(
        "--population-size", type=int, default=20_000, help="people in the synthetic population"
    )
    ap.add_argument("--seed", type=int, default=20261123, help="seed of the population")
    ap.add_argument(
        "--scorecard",
        choices=("trained", "handmade"),
        default="trained",
        help="trained on the population (realistic number of characteristics) or the tests' "
        "four-characteristic card",
    )
    ap.add_argument(
        "--onboarding",
        choices=("bulk", "service"),
        default="bulk",
        help="write the onboarding rows in bulk, or go through the onboarding service",
    )
    ap.add_argument(
        "--contexts",
        type=int,
        default=1000,
        help="customers whose records the decision phase reads",
    )
    ap.add_argument(
        "--decisions",
        type=int,
        default=20_000,
        help="decisions timed in process (cycling over the contexts)",
    )
    ap.add_argument("--no-decision-phase", action="store_true", help="skip phase 1")
    ap.add_argument("--no-apply-phase", action="store_true", help="skip phase 2")
    ap.add_argument(
        "--profile",
        metavar="PATH",
        type=Path,
        help="cProfile client process 0's apply phase: stats to PATH, top 25 by cumulative "
        "time to stderr (that process then runs slower)",
    )
    ap.add_argument("--profile-timer", choices=("wall", "cpu"), default="wall")
    args = ap.parse_args(argv)
    if args.processes < 1 or args.customers < args.processes:
        ap.error("--processes must be ≥ 1 and --customers at least one per process")
    if args.customers + args.processes > args.population_size:
        ap.error("--population-size must exceed --customers (plus one warm-up per process)")
    return args


# ---------------------------------------------------------------------------------------------
# Setup (parent process)


@contextmanager
def steps() -> Iterator[Callable[[str, int | None], Callable[[int], None]]]:
    """Rich progress on stderr: ``step(what, total)`` starts a line and returns ``advance``."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    current: list[Any] = []

    def finish() -> None:
        if current:
            task = current.pop()
            done = next(t.total for t in progress.tasks if t.id == task) or 1
            progress.update(task, total=done, completed=done)

    def step(what: str, total: int | None = None) -> Callable[[int], None]:
        finish()
        task = progress.add_task(what, total=total)
        current.append(task)
        return lambda n: progress.advance(task, n)

    with progress:
        yield step
        finish()


def fresh_postgres(admin_url: str) -> tuple[str, str]:
    """A new, empty database with a unique name: its URL and name."""
    import sqlalchemy as sa

    from microloan.store.db import normalise_url

    name = f"microloan_apply_{uuid.uuid4().hex[:10]}"
    _admin(admin_url, f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(normalise_url(admin_url)).set(database=name)
    return url.render_as_string(hide_password=False), name


def drop_postgres(admin_url: str, name: str) -> None:
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(admin_url: str, sql: str) -> None:
    import sqlalchemy as sa

    from microloan.store.db import normalise_url

    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        admin.dispose()


def platform(url: str, data_key: str, *, pool_size: int = 1) -> Any:
    from microloan.service.platform import Platform
    from microloan.settings import Settings

    return Platform.connect(url, settings=Settings(data_key=data_key), pool_size=pool_size)


def prepare_database(p: Any, on: date) -> dict[str, Any]:
    """Schema, platform book, the clock at ``on``; facts about the server."""
    import sqlalchemy as sa

    from microloan.service.admin import init_db
    from microloan.service.clock import set_clock

    init = init_db(p)
    p.transaction(lambda conn: set_clock(conn, on, p.now))
    with p.engine.connect() as conn:
        if p.is_postgres:
            server = conn.execute(sa.text("SELECT version()")).scalar_one()
        else:
            server = f"SQLite {sqlite3.sqlite_version}"
    return {"dialect": p.engine.dialect.name, "server": server, **init}


def build_scorecard(world: Any, kind: str, folder: Path) -> Path:
    """A folder holding ``scorecard.json``: trained on the population, or the tests' card."""
    if kind == "handmade":
        sys.path.insert(0, str(REPO))
        from tests.integration.decision_support import scorecard

        out = folder / "handmade"
        out.mkdir(parents=True, exist_ok=True)
        (out / "scorecard.json").write_text(json.dumps(scorecard()))
        return out
    from microloan.modeling.train import TrainOptions, train
    from microloan.sim.history import training_table

    data = folder / "training.parquet"
    training_table(world).write_parquet(data)
    out = folder / "model"
    train(
        data,
        target="bad",
        out_dir=out,
        trained_at=datetime.now(UTC),
        options=TrainOptions(workers=1),
    )
    return out


def activate_scorecard(p: Any, model_dir: Path) -> dict[str, Any]:
    """Register the card and activate it by maker-checker (two operators)."""
    from microloan.decisions.scorecard import Scorecard
    from microloan.service import models, operators

    for name in ("bench_maker", "bench_checker"):
        operators.create_operator(p, name, PASSWORD, ["risk_analyst"])
    maker = operators.authenticate(p, "bench_maker", PASSWORD)
    checker = operators.authenticate(p, "bench_checker", PASSWORD)
    version = models.register(p, maker, model_dir)["version"]
    proposal = models.propose_activation(p, maker, version)["proposal_id"]
    operators.decide(p, checker, proposal, approve=True)
    card = Scorecard.load(model_dir)
    return {
        "version": version,
        "characteristics": [c.name for c in card.characteristics],
        "bins": sum(len(c.bins) + 1 for c in card.characteristics),
    }


def eligible_rows(world: Any, on: date, count: int, age_min: int, age_max: int) -> list[int]:
    """The first ``count`` people, in population order, that onboarding would accept."""
    from microloan.access.identity import check_age, parse_id_number
    from microloan.errors import InvalidInput

    rows: list[int] = []
    seen: set[str] = set()
    for row in range(len(world)):
        person = world.person_at(row)
        try:
            number = parse_id_number(person.id_number, on=on)
            check_age(number, on=on, min_age=age_min, max_age=age_max)
        except InvalidInput:
            continue
        if number.value in seen or person.card_number in seen:
            continue
        seen.update((number.value, person.card_number))
        rows.append(row)
        if len(rows) == count:
            return rows
    raise SystemExit(f"only {len(rows)} eligible people: raise --population-size")


def block_listed(p: Any, world: Any, rows: list[int]) -> int:
    """Put the identity numbers the population marks as blocked on the blocked list."""
    from microloan.service.blocking import block

    numbers = [("id_number", world.person_at(r).id_number) for r in rows]
    numbers = [n for n, r in zip(numbers, rows, strict=True) if world.person_at(r).blocked]
    if numbers:
        block(p, numbers, "bench: marked blocked in the population")
    return len(numbers)


def onboard_bulk(
    p: Any, world: Any, rows: list[int], on: date, advance: Callable[[int], None]
) -> list[tuple[int, str]]:
    """Invite and onboard people with the rows the onboarding service writes (identity with
    the device's location, phone, the person's own card, every consent), in chunks."""
    out: list[tuple[int, str]] = []
    for start in range(0, len(rows), BULK_CHUNK):
        chunk = rows[start : start + BULK_CHUNK]
        people = [_onboarding_rows(p, world, r, on) for r in chunk]
        out += p.transaction(lambda conn, people=people: _write_onboarding(conn, p, people, on))
        advance(len(chunk))
    return out


def _onboarding_rows(p: Any, world: Any, row: int, on: date) -> dict[str, Any]:
    from microloan.access.identity import (
        check_card_number,
        check_phone,
        mask,
        mask_phone,
        parse_id_number,
    )
    from microloan.providers.bins import bank_of

    vault = p.vault
    person = world.person_at(row)
    number = parse_id_number(person.id_number, on=on)
    phone = check_phone(person.phone)
    card = check_card_number(person.card_number)
    place = world.location.locate(person.device_id)
    bank = bank_of(card)
    channel = person.primary_channel
    return {
        "channel": channel,
        "open_id": person.open_id(channel),
        "device_id": person.device_id,
        "name": person.name.strip(),
        "identity": {
            "id_number_hash": vault.blind(number.value, kind="id_number"),
            "id_number_enc": vault.encrypt(number.value, column="identity.id_number"),
            "id_number_masked": mask(number.value),
            "birth_date": number.birth_date,
            "is_male": number.is_male,
            "source": "form",
            "phone_hash": vault.blind(phone, kind="phone"),
            "phone_enc": vault.encrypt(phone, column="identity.phone"),
            "phone_masked": mask_phone(phone),
        },
        "card": {
            "card_hash": vault.blind(card, kind="card"),
            "card_enc": vault.encrypt(card, column="bank_card.number"),
            "card_masked": mask(card),
            "bank_code": bank.code,
            "card_type": bank.card_type,
            "is_default": True,
            "status": "bound",
        },
        "steps": [
            (
                "identity",
                "form",
                {
                    "channel": channel,
                    "id_number": mask(number.value),
                    "linked_existing": False,
                    "lat": None if place is None else round(place.lat, 4),
                    "lon": None if place is None else round(place.lon, 4),
                },
            ),
            ("phone", "form", {"phone": mask_phone(phone)}),
            ("bank_card", "rail", {"card": mask(card), "bank": bank.code}),
        ],
    }


def _write_onboarding(
    conn: Any, p: Any, people: list[dict[str, Any]], on: date
) -> list[tuple[int, str]]:
    from microloan.store.schema import (
        bank_card,
        channel_identity,
        consent,
        customer,
        identity,
        invitation,
        onboarding_step,
    )

    now = p.now()
    versions = p.settings.consent_versions
    ids = list(
        conn.execute(
            customer.insert().returning(customer.c.customer_id, sort_by_parameter_order=True),
            [{"name": x["name"], "created_at": now} for x in people],
        ).scalars()
    )
    conn.execute(
        channel_identity.insert(),
        [
            {
                "channel": x["channel"],
                "open_id": x["open_id"],
                "customer_id": cid,
                "device_id": x["device_id"],
                "created_at": now,
                "linked_at": now,
            }
            for cid, x in zip(ids, people, strict=True)
        ],
    )
    conn.execute(
        invitation.insert(),
        [
            {
                "channel": x["channel"],
                "open_id": x["open_id"],
                "kind": "whitelist",
                "status": "accepted",
                "reason": "{}",
                "business_date": on,
                "expires_on": on,
                "created_at": now,
            }
            for x in people
        ],
    )
    conn.execute(
        identity.insert(),
        [
            {"customer_id": c, "verified_at": now, **x["identity"]}
            for c, x in zip(ids, people, strict=True)
        ],
    )
    conn.execute(
        bank_card.insert(),
        [
            {"customer_id": c, "verified_at": now, **x["card"]}
            for c, x in zip(ids, people, strict=True)
        ],
    )
    conn.execute(
        consent.insert(),
        [
            {
                "customer_id": c,
                "kind": k,
                "version": versions[k],
                "source": "form",
                "granted_at": now,
            }
            for c in ids
            for k in CONSENTS
        ],
    )
    steps = [
        (c, step, source, detail)
        for c, x in zip(ids, people, strict=True)
        for step, source, detail in [
            *x["steps"],
            *((f"consent.{k}", "form", {"version": versions[k]}) for k in CONSENTS),
        ]
    ]
    conn.execute(
        onboarding_step.insert(),
        [
            {
                "customer_id": c,
                "step": step,
                "source": source,
                "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True),
                "at": now,
            }
            for c, step, source, detail in steps
        ],
    )
    return [(c, x["channel"]) for c, x in zip(ids, people, strict=True)]


def onboard_service(
    p: Any, world: Any, rows: list[int], on: date, advance: Callable[[int], None]
) -> list[tuple[int, str]]:
    """Invite each person (as a white list would) and onboard them through the service."""
    from microloan.service import onboarding
    from microloan.store.schema import channel_identity, invitation

    out = []
    for row in rows:
        person = world.person_at(row)
        channel = person.primary_channel
        open_id = person.open_id(channel)
        now = p.now()
        with p.engine.begin() as conn:
            conn.execute(
                channel_identity.insert(),
                {
                    "channel": channel,
                    "open_id": open_id,
                    "created_at": now,
                    "device_id": person.device_id,
                },
            )
            conn.execute(
                invitation.insert(),
                {
                    "channel": channel,
                    "open_id": open_id,
                    "kind": "whitelist",
                    "status": "live",
                    "reason": "{}",
                    "business_date": on,
                    "expires_on": on,
                    "created_at": now,
                },
            )
        place = world.location.locate(person.device_id)
        cid = int(
            onboarding.verify_identity(
                p,
                channel_code=channel,
                open_id=open_id,
                name=person.name,
                id_number=person.id_number,
                device_id=person.device_id,
                location=None if place is None else (place.lat, place.lon),
            )["customer_id"]
        )
        onboarding.set_phone(p, cid, person.phone)
        onboarding.bind_card(p, cid, person.card_number, rail=world.holder_verification)
        for kind in CONSENTS:
            onboarding.grant_consent(p, cid, kind)
        out.append((cid, channel))
        advance(1)
    return out


# ---------------------------------------------------------------------------------------------
# Phase 1: the decision in process


def decision_phase(
    p: Any, customers: list[tuple[int, str]], args: argparse.Namespace, step: Any
) -> dict[str, Any]:
    """Time the reads once per context, then providers and features → score → policy."""
    from microloan.service import decisions
    from microloan.service.models import serving_scorecard

    advance = step("decision phase: reading contexts", min(args.contexts, len(customers)))
    contexts, reads = [], []
    for cid, channel in customers[: args.contexts]:
        start = time.perf_counter_ns()
        contexts.append(decisions.read_context(p, cid, channel))
        reads.append((time.perf_counter_ns() - start) / 1e6)
        advance(1)
    cards = {c.channel: serving_scorecard(p, c.channel, c.model_version) for c in contexts}
    s = p.settings
    asked, judged = [], []
    outcomes: Counter[str] = Counter()
    advance = step("decision phase: providers, then features → score → policy", args.decisions)
    for i in range(args.decisions):
        ctx = contexts[i % len(contexts)]
        t0 = time.perf_counter_ns()
        answers = decisions.ask_providers(p, ctx)
        t1 = time.perf_counter_ns()
        a = decisions.judge(ctx, answers, cards[ctx.channel], age_min=s.age_min, age_max=s.age_max)
        t2 = time.perf_counter_ns()
        asked.append((t1 - t0) / 1e6)
        judged.append((t2 - t1) / 1e6)
        outcomes[a.verdict.outcome.value] += 1
        if i % 1000 == 999:
            advance(1000)
    ms_p99 = latency_summary(judged)["latency_ms_p99"]
    return {
        "contexts": len(contexts),
        "decisions": args.decisions,
        "decision": {
            "what": "features → score → policy (decisions.judge)",
            **latency_summary(judged),
        },
        "providers": {"what": "decisions.ask_providers (simulated)", **latency_summary(asked)},
        "reads": {"what": "decisions.read_context, one per context", **latency_summary(reads)},
        "outcomes": dict(outcomes),
        "passed": {"decision_p99": ms_p99 is not None and ms_p99 <= TARGETS["decision_ms_p99"]},
    }


# ---------------------------------------------------------------------------------------------
# Phase 2: apply, from client processes


def worker(
    index: int,
    url: str,
    opts: dict[str, Any],
    customers: list[tuple[int, str]],
    warm_up: tuple[int, str],
    barrier: Any,
    results: Any,
) -> None:
    from microloan.providers.simulated import SimulatedWorld
    from microloan.service import decisions
    from microloan.service.providers import from_world

    report: dict[str, Any] = {"index": index, "pid": os.getpid()}
    try:
        t = time.perf_counter()
        world = SimulatedWorld.load(opts["population"]).warm()
        p = platform(url, opts["data_key"])
        p.use_providers(from_world(world))
        # one untimed application: statements compiled, the scorecard parsed and cached
        report["warm_up_outcome"] = decisions.apply(p, *warm_up)["outcome"]
        report["setup_s"] = round(time.perf_counter() - t, 3)
        profiler = None
        if opts["profile"] and index == 0:
            timer = time.process_time if opts["profile_timer"] == "cpu" else time.perf_counter
            profiler = cProfile.Profile(timer)
        barrier.wait(BARRIER_TIMEOUT_S)
        if profiler is not None:
            profiler.enable()
        rec, outcomes = _apply_phase(p, customers, opts)
        if profiler is not None:
            profiler.disable()
        barrier.wait(BARRIER_TIMEOUT_S)
        barrier.wait(BARRIER_TIMEOUT_S)  # the parent has read the CPU counters
        if profiler is not None:
            _dump_profile(profiler, Path(opts["profile"]))
        report["applies"] = rec.as_dict()
        report["outcomes"] = dict(outcomes)
        p.dispose()
    except BaseException as exc:
        barrier.abort()
        report["crashed"] = f"{type(exc).__name__}: {exc}"[:2000]
    results.put(report)


def _apply_phase(
    p: Any, customers: list[tuple[int, str]], opts: dict[str, Any]
) -> tuple[Recorder, Counter[str]]:
    from microloan.service.decisions import apply

    rec = Recorder()
    outcomes: Counter[str] = Counter()
    todo = customers[: opts["applies_each"]]
    cpu0 = time.process_time()
    deadline = time.perf_counter() + opts["seconds"]
    for cid, channel in todo:
        if time.perf_counter() >= deadline:
            break
        start = time.perf_counter_ns()
        try:
            out = apply(p, cid, channel)
        except Exception as exc:  # counted and reported, the run goes on
            rec.failed(exc)
            continue
        rec.latencies_ms.append((time.perf_counter_ns() - start) / 1e6)
        outcomes[out["outcome"]] += 1
    rec.cpu_s = time.process_time() - cpu0
    return rec, outcomes


def apply_phase(
    url: str,
    customers: list[tuple[int, str]],
    warm_ups: list[tuple[int, str]],
    opts: dict[str, Any],
    args: argparse.Namespace,
    step: Any,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(args.processes + 1)
    results = ctx.Queue()
    shares = [customers[i :: args.processes] for i in range(args.processes)]
    procs = [
        ctx.Process(target=worker, args=(i, url, opts, shares[i], warm_ups[i], barrier, results))
        for i in range(args.processes)
    ]
    step(f"apply phase: starting {args.processes} client processes", None)
    for proc in procs:
        proc.start()
    phase: dict[str, Any] = {}
    pids = {proc.pid for proc in procs if proc.pid is not None}
    db_name = sa_url_database(url)
    try:
        barrier.wait(BARRIER_TIMEOUT_S)
        step("apply phase: applying", None)
        t0, c0, g0 = time.perf_counter(), _cpu_times(), _cpu_by_group(pids, db_name)
        barrier.wait(BARRIER_TIMEOUT_S)
        t1, c1, g1 = time.perf_counter(), _cpu_times(), _cpu_by_group(pids, db_name)
        barrier.wait(BARRIER_TIMEOUT_S)
        phase.update(seconds=t1 - t0, machine_busy=_busy_fraction(c0, c1), cpu=(g0, g1))
    except Exception as exc:  # a worker crashed: its report says why
        phase["broken"] = f"{type(exc).__name__}: {exc}"
    reports = [results.get(timeout=BARRIER_TIMEOUT_S) for _ in procs]
    for proc in procs:
        proc.join()
    return sorted(reports, key=lambda r: r["index"]), phase


def summarise_applies(
    reports: list[dict[str, Any]], phase: dict[str, Any], target: dict[str, Any]
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    examples: list[str] = []
    cpu_s = 0.0
    for r in reports:
        part = r.get("applies")
        if part is None:
            continue
        latencies.extend(part["latencies_ms"])
        errors.update(part["errors"])
        examples.extend(part["examples"])
        outcomes.update(r["outcomes"])
        cpu_s += part["cpu_s"]
    stats = latency_summary(latencies)
    wall_s = phase.get("seconds") or 0.0
    per_s = stats["count"] / wall_s if wall_s else 0.0
    p99 = stats["latency_ms_p99"]
    passed = {"no_errors": not errors and not any("crashed" in r for r in reports)}
    if target["applies_per_s"] is not None:
        passed["throughput"] = per_s >= target["applies_per_s"]
    if target["latency_ms_p99"] is not None:
        passed["latency_p99"] = p99 is not None and p99 <= target["latency_ms_p99"]
    out = {
        "per_s": round(per_s, 1),
        **stats,
        "phase_s": round(wall_s, 3),
        "outcomes": dict(outcomes),
        "client_cpu_ms_per_apply": round(1000 * cpu_s / stats["count"], 3)
        if stats["count"]
        else None,
        "errors": sum(errors.values()),
        "errors_by_code": dict(errors),
        "error_examples": examples[:5],
        "per_process": [
            len(r["applies"]["latencies_ms"]) if "applies" in r else None for r in reports
        ],
        "passed": passed,
    }
    if "cpu" in phase:
        before, after = phase["cpu"]
        out["machine_cpu"] = _cpu_delta(before, after, stats["count"], wall_s)
    return out


def verify(p: Any, applies: dict[str, Any], reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The database holds exactly what the answers said: decisions, lines, review cases."""
    import sqlalchemy as sa

    from microloan.store.schema import credit_line, decision, review_case

    warm = Counter(r.get("warm_up_outcome") for r in reports if r.get("warm_up_outcome"))
    expected_outcomes = Counter(applies.get("outcomes", {})) + warm
    with p.engine.connect() as conn:
        by_outcome = dict(
            conn.execute(
                sa.select(decision.c.outcome, sa.func.count())
                .where(decision.c.kind == "apply")
                .group_by(decision.c.outcome)
            ).all()
        )
        lines = conn.execute(sa.select(sa.func.count()).select_from(credit_line)).scalar_one()
        cases = conn.execute(sa.select(sa.func.count()).select_from(review_case)).scalar_one()
        twice = conn.execute(
            sa.select(sa.func.count()).select_from(
                sa.select(decision.c.customer_id)
                .where(decision.c.kind == "apply")
                .group_by(decision.c.customer_id)
                .having(sa.func.count() > 1)
                .subquery()
            )
        ).scalar_one()
    decisions_n = sum(by_outcome.values())
    out = {
        "decision_rows": decisions_n,
        "applies_answered": sum(expected_outcomes.values()),
        "warm_up_applies": sum(warm.values()),
        "credit_lines": lines,
        "approved": expected_outcomes["approved"],
        "review_cases": cases,
        "review": expected_outcomes["review"],
        "customers_decided_twice": twice,
    }
    out["ok"] = (
        by_outcome == {k: v for k, v in expected_outcomes.items() if v}
        and lines == expected_outcomes["approved"]
        and cases == expected_outcomes["review"]
        and twice == 0
    )
    return out


# ---------------------------------------------------------------------------------------------
# Main


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from microloan.access.crypto import new_key_text

    data_key = new_key_text()  # a fresh key per run: the bench never touches a real one
    fresh_pg: str | None = None
    if args.database:
        url = args.database
    elif args.sqlite:
        url = fresh_sqlite(args.sqlite_path)
    else:
        url, fresh_pg = fresh_postgres(args.admin_url)
    try:
        return run(url, data_key, args)
    finally:
        if fresh_pg is not None and not args.keep_database:
            drop_postgres(args.admin_url, fresh_pg)


def run(url: str, data_key: str, args: argparse.Namespace) -> int:
    p = platform(url, data_key, pool_size=2)
    with tempfile.TemporaryDirectory(prefix="apply_bench_") as tmp, steps() as step:
        made = set_up(p, args, Path(tmp), step)
        customers = made["customers"]
        decision = None
        if not args.no_decision_phase:
            decision = decision_phase(p, customers[: args.customers], args, step)
        reports: list[dict[str, Any]] = []
        phase: dict[str, Any] = {}
        if not args.no_apply_phase:
            opts = {
                "population": str(made["population"]),
                "data_key": data_key,
                "seconds": args.seconds,
                "applies_each": -(-(args.applies or args.customers) // args.processes),
                "profile": str(args.profile) if args.profile else None,
                "profile_timer": args.profile_timer,
            }
            # the last ``--processes`` customers are the warm-ups, one for each process
            reports, phase = apply_phase(
                url, customers[: args.customers], customers[args.customers :], opts, args, step
            )
        step("verifying", None)
        target = TARGETS["postgresql" if made["database"]["dialect"] == "postgresql" else "sqlite"]
        applies = summarise_applies(reports, phase, target) if reports else None
        checked = verify(p, applies or {}, reports) if reports else None
    p.dispose()
    out = report(args, made, decision, applies, checked, reports, phase, target)
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0 if not out["run"]["crashed"] else 1


def set_up(p: Any, args: argparse.Namespace, tmp: Path, step: Any) -> dict[str, Any]:
    """Database, population, scorecard, blocked list and customers; timed for the report."""
    from microloan.providers.simulated import SimulatedWorld
    from microloan.service.providers import from_world
    from microloan.sim import population

    on = population.REFERENCE_DATE
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    step("database: migrate, clock", None)
    database = prepare_database(p, on)
    step(f"population: {args.population_size:,} people", None)
    frame = population.generate(args.population_size, args.seed)
    parquet = population.write(frame, tmp / "population.parquet")
    world = SimulatedWorld.load(parquet).warm()
    p.use_providers(from_world(world))
    seconds["database_and_population"] = time.perf_counter() - t
    t = time.perf_counter()
    step(f"scorecard: {args.scorecard}", None)
    scorecard = activate_scorecard(p, build_scorecard(world, args.scorecard, tmp))
    seconds["scorecard"] = time.perf_counter() - t
    t = time.perf_counter()
    s = p.settings
    rows = eligible_rows(world, on, args.customers + args.processes, s.age_min, s.age_max)
    blocked = block_listed(p, world, rows)
    onboard = onboard_bulk if args.onboarding == "bulk" else onboard_service
    advance = step(f"onboarding ({args.onboarding})", len(rows))
    customers = onboard(p, world, rows, on, advance)
    seconds["onboarding"] = time.perf_counter() - t
    return {
        "database": database,
        "on": on,
        "population": parquet,
        "scorecard": scorecard,
        "blocked": blocked,
        "customers": customers,
        "seconds": seconds,
    }


def report(
    args: argparse.Namespace,
    made: dict[str, Any],
    decision: dict[str, Any] | None,
    applies: dict[str, Any] | None,
    checked: dict[str, Any] | None,
    reports: list[dict[str, Any]],
    phase: dict[str, Any],
    target: dict[str, Any],
) -> dict[str, Any]:
    passed: dict[str, bool] = {}
    if decision is not None:
        passed |= decision.pop("passed")
    if applies is not None:
        passed |= {f"apply_{k}": v for k, v in applies.pop("passed").items()}
    if checked is not None:
        passed["database_consistent"] = checked["ok"]
    crashed = [r["crashed"] for r in reports if "crashed" in r]
    return {
        "benchmark": "apply",
        "database": made["database"],
        "decision_in_process": decision,
        "apply": applies,
        "verify": checked,
        "targets": {
            "decision_ms_p99": TARGETS["decision_ms_p99"],
            "applies_per_s": target["applies_per_s"],
            "apply_latency_ms_p99": target["latency_ms_p99"],
        },
        "passed": passed,
        "pass": all(passed.values()),
        "run": {
            "processes": args.processes,
            "customers": args.customers,
            "warm_up_customers": args.processes,
            "applies_limit": args.applies,
            "seconds_limit": args.seconds,
            "population_size": args.population_size,
            "seed": args.seed,
            "business_date": made["on"].isoformat(),
            "onboarding": args.onboarding,
            "blocked_listed": made["blocked"],
            "scorecard": {"kind": args.scorecard, **made["scorecard"]},
            "setup_s": {k: round(v, 2) for k, v in made["seconds"].items()},
            "client_setup_s": [r.get("setup_s") for r in reports],
            "machine_busy_fraction": phase.get("machine_busy"),
            "profiled_process_0": args.profile_timer if args.profile else None,
            "crashed": crashed or None,
            "broken": phase.get("broken"),
        },
        "machine": machine_info(),
        "source": source_info(),
    }


if __name__ == "__main__":
    raise SystemExit(main())
