"""``microloan``: the command line. Every command takes ``--database URL`` and ``--json``.

Expected errors print one line to stderr and exit with code 2; nothing is changed.
"""

from __future__ import annotations

import sys
from datetime import date
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from rich.table import Table

from microloan.cli.access_cmd import (
    OperatorName,
    acting,
    blocked_app,
    onboard_app,
    operator_app,
    proposal_app,
)
from microloan.cli.common import (
    AsJson,
    Database,
    console,
    emit,
    guarded,
    platform,
    positive_id,
)
from microloan.cli.decision_cmd import apply_cmd, decision_app, rescore_cmd, review_app
from microloan.cli.invite_cmd import invite_app
from microloan.cli.model_cmd import model_app
from microloan.cli.population_cmd import population_app
from microloan.cli.servicing_cmd import eod_app, portfolio_cmd, seed_portfolio_cmd, writeoff_app
from microloan.domain.calendar import parse_date
from microloan.domain.money import parse_yuan
from microloan.domain.rates import DailyRate
from microloan.domain.schedule import Method
from microloan.service import admin, autodebit, ledger_check, lending, line_changes
from microloan.service import clock as clock_svc
from microloan.service.quote import quote, quote_view

app = typer.Typer(
    help="microloan 微粒贷式循环小额信贷平台 — online revolving micro-credit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="数据库 Database.", no_args_is_help=True)
clock_app = typer.Typer(help="营业日 Business clock.", no_args_is_help=True)
customer_app = typer.Typer(help="客户 Customers.", no_args_is_help=True)
line_app = typer.Typer(help="额度 Credit lines.", no_args_is_help=True)
loan_app = typer.Typer(help="借款 Loans.", no_args_is_help=True)
ledger_app = typer.Typer(help="账务 Books.", no_args_is_help=True)
for sub, name in (
    (invite_app, "invite"),
    (onboard_app, "onboard"),
    (blocked_app, "blocked"),
    (decision_app, "decision"),
    (review_app, "review"),
    (operator_app, "operator"),
    (proposal_app, "proposal"),
    (model_app, "model"),
    (population_app, "population"),
    (db_app, "db"),
    (clock_app, "clock"),
    (customer_app, "customer"),
    (line_app, "line"),
    (loan_app, "loan"),
    (ledger_app, "ledger"),
    (eod_app, "eod"),
    (writeoff_app, "writeoff"),
):
    app.add_typer(sub, name=name)


def _method(text: str) -> Method:
    return Method.parse(text)


# ---------------------------------------------------------------------------------------------


@app.command("quote")
@guarded
def quote_cmd(
    amount: Annotated[str, typer.Option(help="Principal in yuan, e.g. 10000.")],
    term: Annotated[int, typer.Option(help="Term in months.")],
    rate: Annotated[str, typer.Option(help="Daily simple rate, e.g. 0.0005.")],
    method: Annotated[
        str, typer.Option(help="equal_principal | equal_installment")
    ] = "equal_principal",
    date_: Annotated[str | None, typer.Option("--date", help="Draw date YYYY-MM-DD.")] = None,
    as_json: AsJson = False,
) -> None:
    """试算 Quote a draw: its schedule, daily rate, annual simple rate and APR."""
    drawn_on = parse_date(date_, field="date") if date_ else _today()
    schedule = quote(
        parse_yuan(amount, field="amount"),
        term,
        DailyRate.parse(rate, field="rate"),
        _method(method),
        drawn_on,
    )
    emit(quote_view(schedule), as_json, _print_quote)


def _today() -> date:
    from microloan.service.clock import SHANGHAI, system_now

    return system_now().astimezone(SHANGHAI).date()


def _print_quote(q: dict[str, Any]) -> None:
    table = Table(
        title=f"还款计划 Schedule — ¥{q['principal']}, {q['term_months']} 期 months, {q['method']}"
    )
    for col in (
        "期 Period",
        "到期日 Due",
        "天 Days",
        "本金 Principal",
        "利息 Interest",
        "合计 Total",
    ):
        table.add_column(col, justify="right")
    for i in q["installments"]:
        table.add_row(
            str(i["period"]),
            i["due_date"],
            str(i["days"]),
            i["principal"],
            i["interest"],
            i["total"],
        )
    console.print(table)
    console.print(
        f"年化利率(IRR) APR {q['apr']}  ·  年化单利 annual simple rate "
        f"{q['annual_simple_rate']}  ·  日利率 daily rate {q['daily_rate']}  ·  "
        f"总利息 total interest ¥{q['total_interest']}"
    )


# ---------------------------------------------------------------------------------------------


@db_app.command("init")
@guarded
def db_init(database: Database = None, as_json: AsJson = False) -> None:
    """建库 Create or upgrade the schema (Alembic) and seed the platform book and the clock."""
    emit(admin.init_db(platform(database)), as_json)


@clock_app.command("set")
@guarded
def clock_set(
    date_: Annotated[str, typer.Argument(metavar="DATE")],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """设置营业日 Set the open business date (tests and simulation)."""
    d = parse_date(date_, field="date")
    p = platform(database)
    view = p.transaction(lambda conn: clock_svc.set_clock(conn, d, p.now))
    emit(_clock_dict(view), as_json)


@clock_app.command("show")
@guarded
def clock_show(database: Database = None, as_json: AsJson = False) -> None:
    """营业日 Show the open and last closed business dates."""
    p = platform(database)
    with p.engine.connect() as conn:
        emit(_clock_dict(clock_svc.read_clock(conn, p.now)), as_json)


@clock_app.command("system")
@guarded
def clock_system(database: Database = None, as_json: AsJson = False) -> None:
    """跟随系统 Follow today in Asia/Shanghai again (production)."""
    p = platform(database)
    p.transaction(lambda conn: clock_svc.follow_system(conn, p.now))
    with p.engine.connect() as conn:
        emit(_clock_dict(clock_svc.read_clock(conn, p.now)), as_json)


def _clock_dict(view: clock_svc.ClockView) -> dict[str, str | None]:
    return {
        "mode": view.mode,
        "open_date": view.open_date.isoformat(),
        "last_closed_date": view.last_closed_date.isoformat() if view.last_closed_date else None,
    }


@customer_app.command("create")
@guarded
def customer_create(
    name: Annotated[str, typer.Option(help="Customer name.")],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """新建客户 Create a customer."""
    emit({"customer_id": lending.create_customer(platform(database), name)}, as_json)


@line_app.command("grant")
@guarded
def line_grant(
    customer: Annotated[int, typer.Option(help="Customer id.")],
    limit: Annotated[str, typer.Option(help="Limit in yuan (500–200000, multiple of 100).")],
    rate: Annotated[str, typer.Option(help="Daily rate (0.000083–0.00066).")],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """授信 Grant or change a credit line."""
    emit(
        lending.grant_line(
            platform(database),
            positive_id(customer, "customer"),
            parse_yuan(limit, field="limit"),
            DailyRate.parse(rate),
        ),
        as_json,
    )


@line_app.command("change")
@guarded
def line_change(
    customer: Annotated[int, typer.Option(help="Customer id.")],
    operator: OperatorName,
    reason: Annotated[str, typer.Option(help="Why (kept with the proposal).")],
    limit: Annotated[str | None, typer.Option(help="New limit, whole yuan.")] = None,
    rate: Annotated[str | None, typer.Option(help="New daily rate for new draws.")] = None,
    event: Annotated[str | None, typer.Option(help="freeze | unfreeze")] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """额度调整 Propose a line change; another operator approves it (`proposal approve`)."""
    p = platform(database)
    emit(
        line_changes.propose_change(
            p,
            acting(p, operator),
            positive_id(customer, "customer"),
            limit_fen=None if limit is None else parse_yuan(limit, field="limit"),
            rate=None if rate is None else DailyRate.parse(rate),
            event=event,
            reason=reason,
        ),
        as_json,
    )


@line_app.command("show")
@guarded
def line_show(
    customer: Annotated[int, typer.Option(help="Customer id.")],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """额度 Show a credit line with its available amount."""
    p = platform(database)
    with p.engine.connect() as conn:
        emit(lending.line_summary(conn, customer), as_json)


@app.command("draw")
@guarded
def draw_cmd(
    customer: Annotated[int, typer.Option(help="Customer id.")],
    amount: Annotated[str, typer.Option(help="Whole yuan, at least 100.")],
    term: Annotated[int, typer.Option(help="Term in months.")],
    key: Annotated[str, typer.Option(help="Idempotency key.")],
    method: Annotated[
        str, typer.Option(help="equal_principal | equal_installment")
    ] = "equal_principal",
    queue_only: Annotated[
        bool, typer.Option("--async", help="Accept only: the worker disburses it.")
    ] = False,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """借款 Draw from the line; disbursed through the rail before it answers (open or failed)."""
    emit(
        lending.draw(
            platform(database),
            positive_id(customer, "customer"),
            parse_yuan(amount, field="amount"),
            term,
            _method(method),
            key,
            pay_now=not queue_only,
        ),
        as_json,
    )


@app.command("repay")
@guarded
def repay_cmd(
    customer: Annotated[int, typer.Option(help="Customer id.")],
    amount: Annotated[str, typer.Option(help="Yuan, up to the payoff.")],
    key: Annotated[str, typer.Option(help="Idempotency key.")],
    loan: Annotated[int | None, typer.Option(help="Loan id; omit to repay all loans.")] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """还款 Repay one loan, or all of them in the rulebook's order."""
    loan_id = positive_id(loan, "loan") if loan is not None else None
    emit(
        lending.repay(
            platform(database),
            positive_id(customer, "customer"),
            loan_id,
            parse_yuan(amount, field="amount"),
            key,
        ),
        as_json,
    )


@app.command("payoff")
@guarded
def payoff_cmd(
    loan: Annotated[int, typer.Option(help="Loan id.")],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """结清金额 What clears the loan at the open business date."""
    emit(lending.payoff(platform(database), positive_id(loan, "loan")), as_json)


@loan_app.command("show")
@guarded
def loan_show(
    loan_id: Annotated[int, typer.Argument(metavar="ID")],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """借款详情 A loan with its live schedule, DPD and payoff."""
    emit(lending.show_loan(platform(database), positive_id(loan_id, "loan")), as_json)


@app.command("autodebit")
@guarded
def autodebit_cmd(
    slot: Annotated[
        int | None, typer.Option(help="Slot of the day (default: the latest come).")
    ] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """自动扣款 Debit what is due and overdue today, through the rail."""
    emit(autodebit.run_autodebit(platform(database), slot=slot).as_dict(), as_json)


@app.command("worker")
@guarded
def worker_cmd(
    once: Annotated[bool, typer.Option("--once", help="Drain what is queued, then exit.")] = False,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """支付处理 Pay queued disbursements through the rail, settle unanswered payments, run
    auto-debit slots as their time comes. Stops on Ctrl-C or SIGTERM."""
    import contextlib
    import signal
    import threading

    from microloan.cli.common import err_console
    from microloan.service import payments

    p, seen, stopping = platform(database, role="worker"), payments.PassResult(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    def report(r: payments.PassResult) -> None:
        seen.add(r)
        seen.autodebit = r.autodebit or seen.autodebit
        if not as_json and (r.busy or r.resolved or r.autodebit):
            err_console.print(f"支付 payments {p.now():%H:%M:%S} {r.as_dict()}", highlight=False)

    with contextlib.suppress(KeyboardInterrupt):
        payments.run_worker(p, once=once, on_pass=report, stop=stopping.is_set)
    emit(seen.as_dict(), as_json)


@app.command("serve")
@guarded
def serve_cmd(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8000,
    no_demo: Annotated[
        bool, typer.Option("--no-demo", help="Start empty: no demo data on first start.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Server processes (one per core for throughput); each has its own pool.",
        ),
    ] = 1,
    database: Database = None,
) -> None:
    """服务 Run the HTTP API, borrower pages and operator console. On first start into an
    empty database the demo population and book are loaded, unless --no-demo."""
    import uvicorn

    from microloan.api.app import create_app, settle_heap
    from microloan.cli.common import err_console
    from microloan.service.admin import init_db
    from microloan.service.demo import load_demo

    p = platform(database)
    if no_demo:
        init_db(p)
    else:
        loaded = load_demo(p)
        if loaded["loaded"]:
            err_console.print("演示数据已载入 demo data loaded", highlight=False)
    err_console.print(
        f"微粒贷平台 microloan on http://{host}:{port}/ (API docs /docs)", highlight=False
    )
    if workers == 1:
        served = create_app(p)
        p.warm_providers()
        settle_heap()
        uvicorn.run(served, host=host, port=port, log_level="warning")
        return
    _prepare_workers(p, database)
    err_console.print(f"{workers} 个进程 worker processes", highlight=False)
    uvicorn.run(
        "microloan.api.app:app_from_settings",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )


def _prepare_workers(p: Any, database: str | None) -> None:
    """Before uvicorn starts the workers (each builds its app from the settings): the database
    they are to use goes in their environment, and the files the embedded SQLite default makes
    on first use (data key, gateway secrets) are made here once, not raced for by the workers."""
    import os

    from microloan.api import gateway
    from microloan.store.schema import channel

    if database:
        os.environ["MICROLOAN_DATABASE_URL"] = database
    if p.engine.dialect.name == "sqlite":
        _ = p.vault
        with p.engine.connect() as conn:
            first = conn.execute(sa.select(channel.c.code).limit(1)).scalar_one_or_none()
        if first is not None and not p.settings.gateway_secrets:
            gateway.channel_secret(p, str(first))
    p.dispose()


@ledger_app.command("check")
@guarded
def ledger_check_cmd(database: Database = None, as_json: AsJson = False) -> None:
    """对账 Prove every book balances and every loan equals its history."""
    report = ledger_check.check_ledger(platform(database))
    emit(report, as_json)
    if not report["ok"]:
        raise typer.Exit(1)


@app.command("demo")
@guarded
def demo_cmd(database: Database = None, as_json: AsJson = False) -> None:
    """演示 Set up the embedded database with demo customers, lines and loans, and show them."""
    from microloan.service.demo import load_demo

    p = platform(database)
    result = load_demo(p)
    with p.engine.connect() as conn:
        clock = clock_svc.read_clock(conn, p.now)
        from microloan.store.schema import credit_line

        ids = [int(c) for c in conn.execute(sa.select(credit_line.c.customer_id)).scalars()]
        lines = [lending.line_summary(conn, cid) for cid in sorted(ids)]
    summary = {
        "demo": result,
        "clock": _clock_dict(clock),
        "lines": lines,
        "ledger": ledger_check.check_ledger(p)["ok"],
    }
    emit(summary, as_json, _print_demo)


def _print_demo(summary: dict[str, Any]) -> None:
    table = Table(title=f"演示数据 Demo book — 营业日 open date {summary['clock']['open_date']}")
    for col in (
        "客户",
        "额度 Limit",
        "可借 Avail.",
        "在贷 Owed",
        "笔 #",
        "日利率 Rate",
        "逾期 Late",
    ):
        table.add_column(col)
    for line in summary["lines"]:
        table.add_row(
            str(line["customer_id"]),
            f"¥{line['limit']}",
            f"¥{line['available']}",
            f"¥{line['outstanding_principal']}",
            str(line["open_loans"]),
            line["daily_rate"],
            "是 yes" if line["overdue_blocked"] else "否 no",
        )
    console.print(table)
    access = summary["demo"].get("access")
    if access:
        _print_access_demo(access)
    console.print(f"账务核对 ledger check: {'通过 ok' if summary['ledger'] else '失败 FAILED'}")
    console.print(
        "试试 Try: microloan loan show 1 · microloan payoff --loan 4 · microloan ledger check · "
        "microloan decision show 1 · microloan invite rewards · microloan onboard show --customer 5"
    )


def _print_access_demo(access: dict[str, Any]) -> None:
    console.print(
        f"白名单邀请 White-list batch: {access['invited']} invited · "
        f"评分卡 scorecard {access['model_version']} (模拟人群训练 trained on the synthetic "
        "population)"
    )
    table = Table(title="授信决策 Credit decisions")
    for col in ("客户", "结果 Outcome", "额度 Line", "日利率 Rate", "等级", "评分", "原因 Reasons"):
        table.add_column(col)
    for d in access["decisions"]:
        table.add_row(
            str(d["customer_id"]),
            d["outcome"],
            f"¥{d['limit']}" if d["limit"] else "—",
            d["daily_rate"] or "—",
            d["grade"] or "—",
            str(d["score"] or "—"),
            ", ".join(d["reasons"][:3]),
        )
    console.print(table)
    ref = access.get("referral")
    if ref and ref.get("customer_id"):
        console.print(
            f"分享邀请 Share invitation {ref['code']}: customer {ref['customer_id']} approved, "
            "both sides rewarded (microloan invite rewards)"
        )


app.command("apply")(guarded(apply_cmd))
app.command("portfolio")(portfolio_cmd)
app.command("seed-portfolio")(seed_portfolio_cmd)
app.command("rescore")(guarded(rescore_cmd))


def main() -> None:
    """Run the command; a usage error (bad option value, missing option) is one line, exit 2."""
    from typer._click.exceptions import NoArgsIsHelpError, UsageError

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:
        if exc.ctx is not None:
            sys.stdout.write(exc.ctx.get_help() + "\n")
        raise SystemExit(0) from None
    except UsageError as exc:
        param = getattr(exc, "param", None)
        field = f" [{param.name}]" if param is not None and param.name else ""
        where = f" ({exc.ctx.command_path})" if exc.ctx is not None else ""
        message = " ".join(exc.format_message().split())
        sys.stderr.write(f"error: input.invalid{field}: {message}{where}\n")
        raise SystemExit(2) from None
    except typer.Abort:
        sys.stderr.write("error: aborted\n")
        raise SystemExit(1) from None
    raise SystemExit(code if isinstance(code, int) else 0)
