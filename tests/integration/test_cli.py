"""The `microloan` command as a user runs it: a subprocess on a SQLite file, with ``--json``.

Each run starts a fresh interpreter (about a second), so the happy path is one flow through every
command, and the refusals each run once against a copy of one prepared database.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from microloan.domain.rates import DailyRate
from microloan.service import lending
from microloan.service.platform import Platform

from .support import EI, books, fen, set_date

CONSOLE_SCRIPT = Path(sys.executable).with_name("microloan")
TIMEOUT_S = 120


def _command() -> list[str]:
    if CONSOLE_SCRIPT.exists():
        return [str(CONSOLE_SCRIPT)]
    return [sys.executable, "-c", "from microloan.cli.app import main; main()"]


def cli(*args: str, db: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROLOAN_")}
    env["COLUMNS"] = "200"
    database = ["--database", db] if db else []
    return subprocess.run(
        [*_command(), *args, *database],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT_S,
        check=False,
    )


def cli_json(*args: str, db: str | None = None) -> Any:
    done = cli(*args, "--json", db=db)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def refused(*args: str, db: str | None = None) -> str:
    """Run a command that must be refused: exit code 2, nothing on stdout, one line on stderr."""
    done = cli(*args, "--json", db=db)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# ---------------------------------------------------------------------------------------------
# quote (no database)

INSTALLMENT_KEYS = {"period", "due_date", "days", "principal", "interest", "total"}


def test_quote_prints_the_worked_example() -> None:
    q = cli_json(
        "quote",
        "--amount",
        "10000",
        "--term",
        "12",
        "--rate",
        "0.0005",
        "--method",
        "equal_installment",
        "--date",
        "2026-01-31",
    )
    assert (q["principal"], q["term_months"], q["method"], q["drawn_on"]) == (
        "10000.00",
        12,
        "equal_installment",
        "2026-01-31",
    )
    rows = q["installments"]
    assert [set(r) for r in rows] == [INSTALLMENT_KEYS] * 12
    assert rows[0] == {
        "period": 1,
        "due_date": "2026-02-28",
        "days": 28,
        "principal": "776.80",
        "interest": "140.00",
        "total": "916.80",
    }
    assert rows[1] == {
        "period": 2,
        "due_date": "2026-03-31",
        "days": 31,
        "principal": "773.84",
        "interest": "142.96",
        "total": "916.80",
    }
    assert rows[11] == {
        "period": 12,
        "due_date": "2027-01-31",
        "days": 31,
        "principal": "909.92",
        "interest": "14.10",
        "total": "924.02",
    }
    assert (q["total_interest"], q["daily_rate"], q["annual_simple_rate"], q["apr"]) == (
        "1008.82",
        "0.0005",
        "18.00%",
        "18.12%",
    )


def test_quote_equal_principal_is_the_default_method() -> None:
    q = cli_json(
        "quote", "--amount", "10000", "--term", "12", "--rate", "0.0005", "--date", "2026-01-31"
    )
    rows = q["installments"]
    assert q["method"] == "equal_principal"
    assert (rows[0]["principal"], rows[0]["interest"]) == ("833.33", "140.00")
    assert (rows[1]["principal"], rows[1]["interest"]) == ("833.33", "142.08")
    assert rows[11]["principal"] == "833.37"
    assert (q["total_interest"], q["annual_simple_rate"], q["apr"]) == (
        "981.67",
        "18.00%",
        "18.11%",
    )


# ---------------------------------------------------------------------------------------------
# every command, in the order a user meets them


def test_a_loan_through_every_command(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    assert cli_json("db", "init", db=db) == {"database": db, "revision": "0005"}
    assert cli_json("clock", "set", "2026-01-31", db=db) == {
        "mode": "manual",
        "open_date": "2026-01-31",
        "last_closed_date": None,
    }
    assert cli_json("customer", "create", "--name", "张三", db=db) == {"customer_id": 1}
    assert cli_json(
        "line", "grant", "--customer", "1", "--limit", "20000", "--rate", "0.0005", db=db
    ) == {
        "customer_id": 1,
        "status": "active",
        "limit": "20000.00",
        "available": "20000.00",
        "outstanding_principal": "0.00",
        "open_loans": 0,
        "daily_rate": "0.0005",
        "overdue_blocked": False,
    }
    drawn = cli_json(
        "draw",
        "--customer",
        "1",
        "--amount",
        "10000",
        "--term",
        "12",
        "--method",
        "equal_installment",
        "--key",
        "d-1",
        db=db,
    )
    assert drawn == {
        "loan_id": 1,
        "status": "open",  # disbursed through the rail before the command answered
        "customer_id": 1,
        "principal": "10000.00",
        "term_months": 12,
        "method": "equal_installment",
        "drawn_on": "2026-01-31",
        "daily_rate": "0.0005",
        "annual_simple_rate": "18.00%",
        "apr": "18.12%",
        "rate_capped": False,
        "first_due_date": "2026-02-28",
    }

    cli_json("clock", "set", "2026-03-05", db=db)
    closed = cli_json("eod", db=db)["closed"]
    assert len(closed) == 33  # 2026-01-31 (the first business date) to 2026-03-04
    assert (closed[0]["business_date"], closed[0]["loans"], closed[0]["interest"]) == (
        "2026-01-31",
        1,
        "0.00",
    )
    last = closed[-1]
    assert {k: last[k] for k in list(last)[:6]} == {
        "business_date": "2026-03-04",
        "loans": 1,
        "interest": "4.62",
        "penalty": "0.61",
        "overdue_loans": 1,
        "blocked_lines": 1,
    }
    # 4 days past due: special mention, 2 % of principal 10,000.00 + interest receivable
    # 140.00 + 4 × 4.61… = 158.45 + penalty 2.44 → 203.22, i.e. 2.0322 % of the loan balance
    assert (last["npl_ratio"], last["provision_coverage"], last["loan_provision_ratio"]) == (
        "0.0000%",
        "n/a",
        "2.0322%",
    )
    assert (last["reconciled"], last["mismatches"], last["non_accrual_loans"]) == (True, 0, 0)
    assert cli_json("payoff", "--loan", "1", db=db) == {
        "loan_id": 1,
        "date": "2026-03-05",
        "payoff": "10166.12",
        "principal": "10000.00",
        "interest": "163.06",
        "penalty": "3.06",
    }
    shown = cli_json("loan", "show", "1", db=db)
    assert (shown["status"], shown["dpd"], shown["payoff"], shown["annual_simple_rate"]) == (
        "open",
        5,
        "10166.12",
        "18.00%",
    )
    assert {
        "period",
        "due_date",
        "principal",
        "interest",
        "principal_paid",
        "interest_paid",
        "status",
    } <= set(shown["schedule"][0])
    assert shown["schedule"][0]["status"] == "overdue"

    assert refused(
        "draw", "--customer", "1", "--amount", "100", "--term", "3", "--key", "d-2", db=db
    ).startswith("error: loan.draw.overdue")
    paid = cli_json("repay", "--customer", "1", "--amount", "919.86", "--key", "r-1", db=db)
    assert paid == {
        "customer_id": 1,
        "amount": "919.86",
        "business_date": "2026-03-05",
        "loans": [
            {
                "loan_id": 1,
                "amount": "919.86",
                "penalty": "3.06",
                "interest": "140.00",
                "principal": "776.80",
                "prepaid_principal": "0.00",
                "payoff_after": "9246.26",
                "closed": False,
            }
        ],
    }
    assert (
        cli_json("repay", "--customer", "1", "--amount", "919.86", "--key", "r-1", db=db) == paid
    )  # the same key answers the same
    cli_json("clock", "set", "2026-03-31", db=db)
    assert cli_json("autodebit", db=db) == {
        "business_date": "2026-03-31",
        "slot": 2,  # the open date is behind the wall clock: every slot has come
        "loans_due": 1,
        "debited": 1,
        "failed": 0,
        "unknown": 0,
        "amount": "916.80",
    }
    report = cli_json("ledger", "check", db=db)
    assert report["ok"] is True and report["loans_checked"] == 1
    assert [(b["book"], b["balanced"]) for b in report["books"]] == [("platform", True)]
    assert report["problems"] == []

    p = Platform.connect(db)
    with p.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE loan SET principal_outstanding_fen = 1 WHERE loan_id = 1")
    p.dispose()
    done = cli("ledger", "check", "--json", db=db)
    assert done.returncode == 1
    assert json.loads(done.stdout)["ok"] is False


# ---------------------------------------------------------------------------------------------
# refusals: exit 2, one line, nothing changed


@pytest.fixture(scope="module")
def prepared(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Any, wall_clock: Any
) -> Path:
    """Customer 1 with a 20000 line and loan 1 (10000, 12 months), open date 2026-02-10."""
    path = tmp_path_factory.mktemp("cli") / "prepared.sqlite3"
    p = Platform.connect(sqlite_template.copy_to(path), now=wall_clock)
    set_date(p, date(2026, 1, 31))
    cid = lending.create_customer(p, "张三")
    lending.grant_line(p, cid, fen("20000"), DailyRate.parse("0.0005"))
    lending.draw(p, cid, fen("10000"), 12, EI, "d-1")
    set_date(p, date(2026, 2, 10))
    p.dispose()
    return path


REFUSALS = {
    "amount-three-decimals": (
        ["draw", "--customer", "1", "--amount", "10.500", "--term", "3", "--key", "x"],
        "input.invalid [amount]",
    ),
    "amount-negative": (
        ["draw", "--customer", "1", "--amount", "-5", "--term", "3", "--key", "x"],
        "input.invalid [amount]",
    ),
    "amount-not-a-number": (
        ["draw", "--customer", "1", "--amount", "abc", "--term", "3", "--key", "x"],
        "input.invalid [amount]",
    ),
    "amount-nan": (
        ["repay", "--customer", "1", "--amount", "NaN", "--key", "x"],
        "input.invalid [amount]",
    ),
    "repay-amount-three-decimals": (
        ["repay", "--customer", "1", "--amount", "1.005", "--key", "x"],
        "input.invalid [amount]",
    ),
    "unknown-method": (
        [
            "draw",
            "--customer",
            "1",
            "--amount",
            "100",
            "--term",
            "3",
            "--method",
            "balloon",
            "--key",
            "x",
        ],
        "input.invalid [method]",
    ),
    "bad-date": (["clock", "set", "2026-02-30"], "input.invalid [date]"),
    "limit-not-hundreds": (
        ["line", "grant", "--customer", "1", "--limit", "550", "--rate", "0.0005"],
        "input.invalid [limit]",
    ),
    "rate-out-of-band": (
        ["line", "grant", "--customer", "1", "--limit", "5000", "--rate", "0.001"],
        "input.invalid [rate]",
    ),
    "over-payoff": (
        ["repay", "--customer", "1", "--loan", "1", "--amount", "10050.01", "--key", "x"],
        "loan.repay.exceeds_payoff [amount]",
    ),
    "unknown-loan": (["loan", "show", "99"], "loan.not_found [loan]"),
    "clock-before-business": (["clock", "set", "2026-01-30"], "clock.before_business [date]"),
}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        *[pytest.param(args, expected, id=name) for name, (args, expected) in REFUSALS.items()],
        pytest.param(
            ["draw", "--customer", "1", "--amount", "100", "--term", "abc", "--key", "x"],
            "input.invalid [term]",
            id="term-not-an-integer",
        ),
        pytest.param(
            ["draw", "--customer", "1", "--amount", "100", "--term", "3"],
            "input.invalid [key]",
            id="key-missing",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    prepared: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    db_file = tmp_path / "copy.sqlite3"
    shutil.copyfile(prepared, db_file)
    db = f"sqlite:///{db_file}"
    p = Platform.connect(db)
    before = books(p)
    p.dispose()

    line = refused(*args, db=db)
    assert line.startswith(f"error: {expected}"), line
    if expected.startswith("loan.repay.exceeds_payoff"):
        assert "10050.00" in line  # the message states the payoff

    p = Platform.connect(db)
    assert books(p) == before
    p.dispose()


def test_a_database_that_was_never_initialised_gives_one_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    line = refused("payoff", "--loan", "1", db=db)
    assert "db init" in line


def test_a_seeded_book_through_the_end_of_day_commands(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'book.sqlite3'}"
    cli_json("db", "init", db=db)
    cli_json("clock", "set", "2026-06-01", db=db)
    assert refused("portfolio", db=db).startswith("error: portfolio.no_figures [date]")
    seeded = cli_json("seed-portfolio", "--loans", "400", "--seed", "3", db=db)
    assert (seeded["loans"], seeded["as_of"]) == (400, "2026-05-31")
    cli_json("clock", "set", "2026-06-03", db=db)
    closed = cli_json("eod", db=db)["closed"]
    assert [d["business_date"] for d in closed] == ["2026-06-01", "2026-06-02"]
    assert all(d["loans"] == 400 and d["reconciled"] for d in closed)
    status = cli_json("eod", "status", db=db)
    assert (status["last_closed_date"], status["dates_to_close"]) == ("2026-06-02", 0)
    assert [r["status"] for r in status["runs"]] == ["done", "done"]
    assert set(status["runs"][0]["step_seconds"]) >= {"read", "compute", "update", "classify"}
    figures = cli_json("portfolio", db=db)
    assert figures["business_date"] == "2026-06-02" and figures["loans"] == 400
    assert figures["reconciliation"] == {"ok": True, "issues": []}
    npl = sum(fen(figures["by_tier"][t]["principal"]) for t in ("substandard", "doubtful", "loss"))
    assert fen(figures["npl_balance"]) == npl > 0
    assert figures["npl_ratio"].endswith("%") and figures["provision_coverage"] != "n/a"
    earlier = cli_json("portfolio", "--date", "2026-06-01", db=db)
    assert earlier["business_date"] == "2026-06-01"
    candidates = cli_json("writeoff", "list", db=db)["candidates"]
    assert candidates and all(c["dpd"] > 180 for c in candidates)
    assert cli_json("ledger", "check", db=db)["ok"] is True
    assert refused("seed-portfolio", "--loans", "0", db=db).startswith(
        "error: input.invalid [loans]"
    )
