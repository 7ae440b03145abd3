"""``microloan apply``, ``decision show``, ``review list|decide`` and ``rescore``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from microloan.cli.access_cmd import OperatorName, acting
from microloan.cli.common import AsJson, Database, console, emit, guarded, platform, positive_id
from microloan.service import decisions, reviews

decision_app = typer.Typer(help="授信决策 Credit decisions.", no_args_is_help=True)
review_app = typer.Typer(help="人工审核 Manual review.", no_args_is_help=True)


def apply_cmd(
    customer: Annotated[int, typer.Option(help="Customer id.")],
    channel: Annotated[str, typer.Option(help="The channel applied through: wechat | qq | …")],
    device: Annotated[
        str | None, typer.Option(help="Device id (default: the one entered on).")
    ] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """申请额度 Apply: decide a line and a daily rate (knock-outs, scorecard, fraud, policy)."""
    emit(
        decisions.apply(
            platform(database), positive_id(customer, "customer"), channel, device_id=device
        ),
        as_json,
        _print_decision,
    )


def _print_decision(d: dict[str, Any]) -> None:
    verdict = {
        "approved": "通过 approved",
        "declined": "拒绝 declined",
        "review": "人工审核 review",
    }
    console.print(f"决策 Decision {d['decision_id']}: [bold]{verdict[d['outcome']]}[/bold]")
    if d["approved"]:
        console.print(
            f"额度 Line ¥{d['limit']} · 日利率 daily {d['daily_rate']} · "
            f"年化单利 annual {d['annual_simple_rate']} · 示例 APR {d['apr_example']}"
        )
    console.print(f"等级 Grade {d['grade']} · 评分 score {d['score']} · PD {d['pd']}")
    console.print(f"原因 Reasons: {', '.join(d['reasons']) or '—'}")


@decision_app.command("show")
@guarded
def decision_show(
    decision_id: Annotated[int, typer.Argument(metavar="ID")],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """决策记录 A stored decision: inputs, model version, points, reasons, signals."""
    emit(decisions.show_decision(platform(database), positive_id(decision_id, "decision")), as_json)


@review_app.command("list")
@guarded
def review_list(
    status: Annotated[str, typer.Option(help="open | approved | declined")] = "open",
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """审核队列 The manual review queue."""
    emit(reviews.review_queue(platform(database), status=status), as_json)


@review_app.command("decide")
@guarded
def review_decide(
    case: Annotated[int, typer.Argument(metavar="CASE")],
    operator: OperatorName,
    approve: Annotated[bool, typer.Option("--approve/--decline", help="The decision.")],
    note: Annotated[str, typer.Option(help="Why.")] = "",
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """审核决定 Approve or decline a case (the acting operator is recorded)."""
    p = platform(database)
    emit(
        reviews.decide_review(
            p, acting(p, operator), positive_id(case, "case"), approve=approve, note=note
        ),
        as_json,
    )


def rescore_cmd(
    limit: Annotated[int | None, typer.Option(help="At most this many lines.")] = None,
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """重新评分 Review every line on new behaviour: raise, lower or freeze."""
    emit(reviews.rescore(platform(database), limit=limit), as_json)
