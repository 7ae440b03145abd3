"""End of day, portfolio figures, seeding a book and write-offs on the command line."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer

from microloan.cli.access_cmd import OperatorName, acting
from microloan.cli.common import (
    AsJson,
    Database,
    console,
    emit,
    err_console,
    guarded,
    platform,
    positive_id,
)
from microloan.domain.calendar import parse_date
from microloan.errors import InvalidInput

eod_app = typer.Typer(help="日终 End of day.", invoke_without_command=True)
writeoff_app = typer.Typer(help="核销 Write-offs (maker-checker).", no_args_is_help=True)


def _bar(disable: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("剩余 left"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=disable,
    )


@eod_app.callback()
@guarded
def eod_cmd(
    ctx: typer.Context,
    until: Annotated[str | None, typer.Option(help="Close dates up to this one only.")] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """日终 Close every business date before the open one, in order (catching up)."""
    if ctx.invoked_subcommand is not None:
        return
    from microloan.service import eod

    p = platform(database, role="eod")
    stop = parse_date(until, field="until") if until else None
    with _bar(as_json) as bar:
        task = bar.add_task("日终 end of day", total=None, rate="")
        started: dict[date, float] = {}

        def tick(d: date, done: int, total: int) -> None:
            elapsed = bar.get_time() - started.setdefault(d, bar.get_time())
            rate = f"{done / elapsed:,.0f} 笔/秒 loans/s" if elapsed > 0 else ""
            if done == 0 or d not in started or elapsed == 0:
                bar.reset(task, total=total, completed=done)
            bar.update(
                task, description=f"日终 end of day {d}", completed=done, total=total, rate=rate
            )

        days = eod.run_eod(p, until=stop, progress=tick)
    emit({"closed": [d.as_dict() for d in days]}, as_json, _human_days)


def _human_days(data: dict[str, Any]) -> None:
    from rich.table import Table

    if not data["closed"]:
        console.print("没有待关闭的营业日 Nothing to close.")
        return
    table = Table(title="日终 End of day")
    for col in (
        "营业日 date",
        "借款 loans",
        "利息 interest",
        "罚息 penalty",
        "逾期 overdue",
        "非应计 non-accrual",
        "不良率 NPL",
        "拨备覆盖 coverage",
        "对账 reconciled",
    ):
        table.add_column(col)
    for d in data["closed"]:
        table.add_row(
            d["business_date"],
            f"{d['loans']:,}",
            f"¥{d['interest']}",
            f"¥{d['penalty']}",
            f"{d['overdue_loans']:,}",
            f"{d['non_accrual_loans']:,}",
            d.get("npl_ratio", "n/a"),
            d.get("provision_coverage", "n/a"),
            "✓" if d["reconciled"] else f"✗ {d['mismatches']}",
        )
    console.print(table)


@eod_app.command("status")
@guarded
def eod_status_cmd(
    limit: Annotated[int, typer.Option(help="How many recent runs.")] = 10,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """日终状态 The clock and the recent end-of-day runs."""
    from microloan.service.eod_reports import eod_status

    if limit < 1:
        raise InvalidInput("must be at least 1", field="limit")
    emit(eod_status(platform(database), limit=limit), as_json, _human_status)


def _human_status(data: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(
        f"营业日 open date {data['open_date']} · 已关闭至 closed through "
        f"{data['last_closed_date'] or '—'} · 待关闭 to close {data['dates_to_close']}"
    )
    table = Table(title="日终运行 End-of-day runs")
    for col in ("#", "营业日 date", "状态 status", "借款 loans", "秒 s", "对账 reconciled"):
        table.add_column(col)
    for r in data["runs"]:
        table.add_row(
            str(r["run_id"]),
            r["business_date"],
            r["status"],
            f"{r['loans']:,}/{r['total']:,}",
            "" if r["seconds"] is None else f"{r['seconds']:.1f}",
            {True: "✓", False: f"✗ {r['mismatches']}", None: "—"}[r["reconciled"]],
        )
    console.print(table)


@guarded
def portfolio_cmd(
    date_: Annotated[
        str | None, typer.Option("--date", help="Business date (default: the last closed).")
    ] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """资产质量 The day's portfolio: balances, NPL ratio, provisions, tiers."""
    from microloan.service.eod_reports import portfolio

    on = parse_date(date_, field="date") if date_ else None
    emit(portfolio(platform(database), on), as_json, _human_portfolio)


def _human_portfolio(data: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(
        f"[bold]{data['business_date']}[/] 贷款余额 loan balance ¥{data['loan_balance']} · "
        f"不良率 NPL ratio {data['npl_ratio']} · 拨备覆盖率 provision coverage "
        f"{data['provision_coverage']} · 贷款拨备率 loan provision ratio "
        f"{data['loan_provision_ratio']}"
    )
    table = Table(title="五级分类 Five tiers")
    for col in ("分类 tier", "借款 loans", "本金 principal", "拨备 allowance"):
        table.add_column(col)
    for tier in data["by_tier"].values():
        table.add_row(
            tier["label"], f"{tier['loans']:,}", f"¥{tier['principal']}", f"¥{tier['allowance']}"
        )
    console.print(table)
    recon = data["reconciliation"]
    console.print(
        "对账 reconciliation: 通过 ok"
        if recon["ok"]
        else f"对账 reconciliation: {len(recon['issues'])} 处差异 differences"
    )


@guarded
def seed_portfolio_cmd(
    loans: Annotated[int, typer.Option(help="How many open loans.")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """造数 Create a realistic book of N open loans in bulk (benchmarks, demos)."""
    from microloan.service.seed import seed_portfolio

    if loans < 1:
        raise InvalidInput("must be at least 1", field="loans")
    p = platform(database)
    with _bar(as_json) as bar:
        task = bar.add_task("造数 seeding loans", total=loans, rate="")
        result = seed_portfolio(
            p, loans, seed=seed, progress=lambda done, total: bar.update(task, completed=done)
        )
    emit(result, as_json)


@writeoff_app.command("list")
@guarded
def writeoff_list(
    limit: Annotated[int, typer.Option(help="How many.")] = 100,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """核销候选 Loans more than 180 days past due, not yet written off."""
    from microloan.service.write_offs import candidates

    emit(candidates(platform(database), limit=limit), as_json)


@writeoff_app.command("propose")
@guarded
def writeoff_propose(
    loan: Annotated[int, typer.Option(help="Loan id.")],
    operator: OperatorName,
    reason: Annotated[str, typer.Option(help="Why (kept with the proposal).")],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """提议核销 Propose a write-off; another operator approves it (`proposal approve`)."""
    from microloan.service.write_offs import propose_write_off

    p = platform(database)
    emit(
        propose_write_off(p, acting(p, operator), positive_id(loan, "loan"), reason=reason),
        as_json,
    )
