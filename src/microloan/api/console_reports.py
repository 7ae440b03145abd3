"""The console's report pages: end-of-day runs, the portfolio dashboard with its charts,
write-off candidates, the audit log and the operators; each through the operator API's own
endpoint function (its roles, its audit line).

    page                                   roles (as the API's)
    /console/write-offs                    finance collections auditor administrator
    /console/eod, /console/portfolio       finance risk_analyst auditor administrator
    /console/audit, /console/operators     auditor administrator
"""

from __future__ import annotations

import json
import math
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from microloan.api import charts
from microloan.api import operator as api
from microloan.api.console_auth import ConsoleRoute, PlatformDep, SessionDep, page
from microloan.api.console_text import TEXT
from microloan.api.pages import page_context
from microloan.api.problems import status_of
from microloan.domain.classification import Tier
from microloan.errors import NotFound
from microloan.service import eod_reports, operator_access
from microloan.service.operators import PROPOSAL_ROLES
from microloan.service.platform import Platform

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)

HISTORY_RUNS = 90  # end-of-day runs read for the ratio charts (a date may have been rerun)
HISTORY_DAYS = 60  # dates shown in the ratio charts
DECISION_DAYS = 30  # business dates shown in the approvals chart
assert 1 <= DECISION_DAYS <= charts.MAX_POINTS  # the service checks its own bound


@router.get("/write-offs", response_class=HTMLResponse)
def write_off_candidates(request: Request, session: SessionDep, p: PlatformDep) -> HTMLResponse:
    found = api.write_off_candidates(session.operator, p, 100)
    may_propose = session.operator.roles.intersection(PROPOSAL_ROLES["loan.write_off"])
    return page(request, "write_offs.html", session, w=found, may_propose=bool(may_propose))


@router.get("/eod", response_class=HTMLResponse)
def eod(request: Request, session: SessionDep, p: PlatformDep) -> HTMLResponse:
    status = api.eod_runs(session.operator, p, 30)
    return page(request, "eod.html", session, eod=status)


@router.get("/audit", response_class=HTMLResponse)
def audit(
    request: Request,
    session: SessionDep,
    p: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=operator_access.MAX_AUDIT_ROWS)] = 100,
    subject: Annotated[str, Query(max_length=64)] = "",
    action: Annotated[str, Query(max_length=40)] = "",
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    entries = api.audit_log(
        session.operator, p, limit, subject.strip() or None, action.strip() or None, before_id
    )["entries"]
    for entry in entries:
        entry["detail_text"] = json.dumps(entry["detail"], ensure_ascii=False, sort_keys=True)
    older = entries[-1]["audit_id"] if len(entries) == limit else None
    return page(
        request,
        "audit.html",
        session,
        entries=entries,
        limit=limit,
        subject=subject,
        action=action,
        older=older,
    )


@router.get("/operators", response_class=HTMLResponse)
def operator_list(request: Request, session: SessionDep, p: PlatformDep) -> HTMLResponse:
    found = api.operator_list(session.operator, p)["operators"]
    return page(request, "operators.html", session, operators=found)


# -- the portfolio ---------------------------------------------------------------------------------


@router.get("/portfolio", response_class=HTMLResponse)
def portfolio(
    request: Request,
    session: SessionDep,
    p: PlatformDep,
    on: Annotated[date | None, Query(alias="date")] = None,
) -> HTMLResponse:
    """The figures of a closed date (default: the last), and charts over the stored dates."""
    try:
        figures = api.portfolio(session.operator, p, on)
    except NotFound as exc:  # nothing closed yet, or not that date: the page, with the reason
        return page(
            request,
            "portfolio.html",
            session,
            status_code=status_of(exc),
            error=exc,
            on=on,
            figures=None,
            history=[],
            decisions=[],
            charts={},
        )
    history = ratio_history(p)
    decided = eod_reports.decisions_by_day(p, days=DECISION_DAYS)
    lang = page_context(request, TEXT)["lang"]
    drawn = _charts(lang, figures, history, decided)
    return page(
        request,
        "portfolio.html",
        session,
        on=on,
        figures=figures,
        tiers=[(t.value, figures["by_tier"][t.value]) for t in Tier],
        history=history,
        decisions=decided,
        charts=drawn,
        error=None,
    )


def ratio_history(p: Platform) -> list[dict[str, Any]]:
    """The last closed dates' ratios, oldest first, from the runs that finished (the latest
    run of a date counts)."""
    runs = eod_reports.eod_status(p, limit=HISTORY_RUNS)["runs"]
    by_date: dict[str, dict[str, Any]] = {}
    for run in runs:  # newest first
        if run["status"] == "done" and "npl_ratio" in run:
            by_date.setdefault(run["business_date"], run)
    days = sorted(by_date)[-HISTORY_DAYS:]
    return [by_date[d] for d in days]


# -- the charts ------------------------------------------------------------------------------------


def _number(text: str) -> float:
    """A figure as the services write it (``"1234.50"``, ``"12.3456%"``, ``"n/a"``), for drawing
    only; ``n/a`` is a gap."""
    text = text.rstrip("%")
    return math.nan if text == "n/a" else float(text)


def _charts(
    lang: str,
    figures: dict[str, Any],
    history: list[dict[str, Any]],
    decided: list[tuple[str, dict[str, int]]],
) -> dict[str, Markup]:
    """The page's charts: titles in the page's language (the accessible names), the drawn
    labels too where a Chinese font is installed, else in English."""
    t = TEXT[lang]
    d = TEXT[lang if lang == "en" or charts.can_draw_chinese() else "en"]
    tiers = tuple(d[f"tier_{tier.value}"] for tier in Tier)
    by_tier = figures["by_tier"]
    drawn = {
        "balance": charts.bar_chart(
            "chart-balance",
            t["chart_balance"],
            t["chart_table_below"],
            tiers,
            ((d["principal"], tuple(_number(by_tier[x.value]["principal"]) for x in Tier)),),
            ylabel=d["yuan"],
        ),
        "allowance": charts.bar_chart(
            "chart-allowance",
            t["chart_allowance"],
            t["chart_table_below"],
            tiers,
            ((d["allowance"], tuple(_number(by_tier[x.value]["allowance"]) for x in Tier)),),
            ylabel=d["yuan"],
        ),
    }
    if history:
        dates = tuple(run["business_date"] for run in history)
        for key, figure in (("npl", "npl_ratio"), ("coverage", "provision_coverage")):
            values = tuple(_number(run[figure]) for run in history)
            drawn[key] = charts.line_chart(
                f"chart-{key}",
                t[f"chart_{key}"],
                t["chart_table_below"],
                dates,
                ((d[figure], values),),
                ylabel="%",
            )
    if decided:
        series = tuple(
            (d[f"outcome_{o}"], tuple(float(c[o]) for _, c in decided))
            for o in eod_reports.DECISION_OUTCOMES
        )
        drawn["decisions"] = charts.bar_chart(
            "chart-decisions",
            t["chart_decisions"],
            t["chart_table_below"],
            tuple(on for on, _ in decided),
            series,
            ylabel=d["applications"],
            counts=True,
        )
    return drawn
