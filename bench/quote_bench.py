"""Schedules per second in one process: the quote path with and without the APR.

Cycles over a fixed, seeded set of realistic quotes (amounts, daily rates in the product band,
draw dates over a year, both methods) and measures, each for ``--seconds``:

* ``schedule``: ``capped_schedule`` (the schedule a quote or a draw gets: built, tested against
  the 24 % APR cap, and re-rated by bisection when it is above it);
* ``schedule_with_apr``: the same plus ``apr_bp100`` on the result (what a quote page shows);
* ``build_schedule``: the uncapped ``build_schedule`` alone, for reference.

Prints one JSON object on stdout. Not a test: run it as
``.venv/bin/python bench/quote_bench.py [--seconds 3] [--term 36] ...``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, source_info

from microloan.domain.rates import (
    BAND_MAX_UNITS,
    BAND_MIN_UNITS,
    MICRO_STEP_UNITS,
    DailyRate,
)
from microloan.domain.schedule import (
    MAX_TERM_MONTHS,
    Method,
    Schedule,
    apr_bp100,
    build_schedule,
    capped_schedule,
)

TARGET_SCHEDULES_PER_S = 20_000
TARGET_SCHEDULES_WITH_APR_PER_S = 5_000
CHECK_EVERY = 64  # look at the clock once per this many schedules


@dataclass(frozen=True, slots=True)
class Case:
    principal_fen: int
    term_months: int
    rate: DailyRate
    method: Method
    drawn_on: date


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        help="measuring time per figure (default 3; the run takes about 7×)",
    )
    ap.add_argument(
        "--warmup-seconds",
        type=float,
        default=0.5,
        help="untimed pass before measuring (fills the due-date caches)",
    )
    ap.add_argument("--term", type=int, default=36, help="term in months (default 36)")
    ap.add_argument(
        "--cases", type=int, default=4096, help="size of the quote set cycled over (default 4096)"
    )
    ap.add_argument("--seed", type=int, default=20250101)
    ap.add_argument(
        "--first-date",
        type=date.fromisoformat,
        default=date(2025, 1, 1),
        help="first draw date (default 2025-01-01)",
    )
    ap.add_argument("--days", type=int, default=365, help="draw dates span this many days")
    ap.add_argument("--min-yuan", type=int, default=100, help="smallest amount (default 100)")
    ap.add_argument(
        "--max-yuan",
        type=int,
        default=200_000,
        help="largest amount (default 200000, the largest line)",
    )
    ap.add_argument(
        "--min-rate-units",
        type=int,
        default=BAND_MIN_UNITS,
        help=f"lowest daily rate in 1e-10 (default {BAND_MIN_UNITS} = 0.000083)",
    )
    ap.add_argument(
        "--max-rate-units",
        type=int,
        default=BAND_MAX_UNITS,
        help=f"highest daily rate in 1e-10 (default {BAND_MAX_UNITS} = 0.00066)",
    )
    ap.add_argument(
        "--no-per-method",
        action="store_true",
        help="skip the per-method breakdown (halves the run time)",
    )
    args = ap.parse_args(argv)
    if not 1 <= args.term <= MAX_TERM_MONTHS:
        ap.error(f"--term must be 1–{MAX_TERM_MONTHS}")
    if args.cases < 1 or args.days < 1 or args.seconds <= 0:
        ap.error("--cases, --days and --seconds must be positive")
    return args


def make_cases(args: argparse.Namespace) -> list[Case]:
    """Seeded quotes: log-uniform whole-yuan amounts, rates on the 0.000001 grid, any day."""
    rng = random.Random(args.seed)
    lo_step = -(-args.min_rate_units // MICRO_STEP_UNITS)
    hi_step = args.max_rate_units // MICRO_STEP_UNITS
    cases = []
    for _ in range(args.cases):
        yuan = round(args.min_yuan * (args.max_yuan / args.min_yuan) ** rng.random())
        cases.append(
            Case(
                principal_fen=max(args.min_yuan, min(args.max_yuan, yuan)) * 100,
                term_months=args.term,
                rate=DailyRate(rng.randint(lo_step, hi_step) * MICRO_STEP_UNITS),
                method=rng.choice(list(Method)),
                drawn_on=args.first_date + timedelta(days=rng.randrange(args.days)),
            )
        )
    return cases


def schedule_only(c: Case) -> Schedule:
    return capped_schedule(c.principal_fen, c.term_months, c.rate, c.method, c.drawn_on)


def schedule_with_apr(c: Case) -> object:
    s = capped_schedule(c.principal_fen, c.term_months, c.rate, c.method, c.drawn_on)
    return apr_bp100(s.principal_fen, s.totals)


def uncapped_only(c: Case) -> object:
    return build_schedule(c.principal_fen, c.term_months, c.rate, c.method, c.drawn_on)


def rate_per_s(work: Callable[[Case], object], cases: list[Case], seconds: float) -> float:
    """Calls of ``work`` per second, cycling over ``cases`` for at least ``seconds``."""
    n = len(cases)
    done = 0
    i = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(CHECK_EVERY):
            work(cases[i])
            i = i + 1 if i + 1 < n else 0
        done += CHECK_EVERY
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def describe(cases: list[Case]) -> dict[str, Any]:
    """What the set holds: how many quotes the cap re-rates, and the APR range."""
    capped = 0
    aprs = []
    for c in cases:
        s = schedule_only(c)
        capped += s.rate.units != c.rate.units
        aprs.append(apr_bp100(s.principal_fen, s.totals))
    return {
        "cases": len(cases),
        "capped_fraction": round(capped / len(cases), 4),
        "apr_bp100_min": min(aprs),
        "apr_bp100_max": max(aprs),
        "methods": {m.value: sum(c.method is m for c in cases) for m in Method},
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases = make_cases(args)
    info = describe(cases)  # also a warm-up of every case
    rate_per_s(schedule_with_apr, cases, args.warmup_seconds)

    schedules = rate_per_s(schedule_only, cases, args.seconds)
    with_apr = rate_per_s(schedule_with_apr, cases, args.seconds)
    uncapped = rate_per_s(uncapped_only, cases, args.seconds)
    per_method: dict[str, Any] = {}
    if not args.no_per_method:
        for m in Method:
            subset = [c for c in cases if c.method is m]
            per_method[m.value] = {
                "schedules_per_s": round(rate_per_s(schedule_only, subset, args.seconds)),
                "schedules_with_apr_per_s": round(
                    rate_per_s(schedule_with_apr, subset, args.seconds)
                ),
            }

    passed = {
        "schedules_per_s": schedules >= TARGET_SCHEDULES_PER_S,
        "schedules_with_apr_per_s": with_apr >= TARGET_SCHEDULES_WITH_APR_PER_S,
    }
    print(
        json.dumps(
            {
                "benchmark": "quote",
                "term_months": args.term,
                "schedules_per_s": round(schedules),
                "schedules_with_apr_per_s": round(with_apr),
                "build_schedule_uncapped_per_s": round(uncapped),
                "per_method": per_method,
                "targets": {
                    "schedules_per_s": TARGET_SCHEDULES_PER_S,
                    "schedules_with_apr_per_s": TARGET_SCHEDULES_WITH_APR_PER_S,
                },
                "passed": passed,
                "pass": all(passed.values()),
                "workload": {
                    **info,
                    "seed": args.seed,
                    "first_date": args.first_date.isoformat(),
                    "days": args.days,
                    "yuan_range": [args.min_yuan, args.max_yuan],
                    "rate_units_range": [args.min_rate_units, args.max_rate_units],
                    "seconds_per_figure": args.seconds,
                },
                "machine": machine_info(),
                "source": source_info(),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
