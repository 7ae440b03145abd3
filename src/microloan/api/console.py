"""The operator console: server-rendered pages over the operator API (``/console``).

Each page calls the operator API's own endpoint function (``microloan.api.operator``): the role
check (403, the refusal audited as ``access.denied``), the service call and the audit line are
the API's, not a copy of them, so the console cannot drift from the API's role matrix. The
session, CSRF tokens and error pages are in ``console_auth``; the reports (end of day, the
portfolio with its charts, write-off candidates, the audit log, operators) in
``console_reports``; the strings, Chinese and English, in ``console_text``.

    page                                   roles (as the API's)
    /console/login, /console/logout        anyone; any operator
    /console                               any operator
    /console/customers, /customers/{id},   customer_service collections risk_analyst auditor
             /loans/{id}                   administrator
    /console/reviews (+ decision form)     risk_analyst auditor administrator (deciding:
                                           risk_analyst administrator)
    /console/proposals (+ forms)           risk_analyst finance collections auditor
                                           administrator; proposing and checking by kind
    see console_reports for the rest
    any other path under /console          anyone: a page saying so (404), not a problem
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter

from microloan.api import console_reports, problems
from microloan.api import operator as api
from microloan.api.console_auth import (
    LOGIN_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    ConsoleRoute,
    FormSessionDep,
    LimiterDep,
    PlatformDep,
    SessionDep,
    check_login_csrf,
    clear_cookie,
    csrf_token,
    login_secret,
    new_login_secret,
    not_found_page,
    page,
    safe_next,
    set_cookie,
)
from microloan.api.problems import ApiError, status_of
from microloan.domain.money import format_yuan
from microloan.domain.rates import DailyRate
from microloan.errors import MicroloanError
from microloan.service.operators import PROPOSAL_ROLES, Operator

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)

Id = Annotated[int, Path(ge=1, le=2**62)]
LOGIN_FORM_S = 3600  # how long the login form's CSRF cookie lives
MAX_FORM_CHARS = 256  # any one form field; the API's models check the real limits
FormText = Annotated[str, Form(max_length=MAX_FORM_CHARS)]
# what a form reports after it redirected (post/redirect/get), shown with role="status"
DONE = frozenset(
    {"proposed", "approved", "rejected", "review.approved", "review.declined", "logout"}
)
_proposal_request: TypeAdapter[Any] = TypeAdapter(api.ProposalRequest)


def _notice(request: Request) -> tuple[str, int | None] | None:
    done = request.query_params.get("done")
    raw = request.query_params.get("id", "")
    if done not in DONE:
        return None
    return done, int(raw) if raw.isdigit() and len(raw) <= 19 else None


def _done(path: str, done: str, subject_id: int) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}{path}?done={done}&id={subject_id}", status_code=303)


# -- login and logout ------------------------------------------------------------------------------


def _login_page(
    request: Request,
    *,
    next_: str,
    username: str = "",
    error: MicroloanError | None = None,
) -> HTMLResponse:
    secret = login_secret(request)
    fresh = secret is None
    secret = secret or new_login_secret()
    status = 200 if error is None else status_of(error)
    response = page(
        request,
        "login.html",
        None,
        status_code=status,
        login_csrf=csrf_token(secret),
        next=safe_next(next_),
        username=username,
        error=error,
        notice=_notice(request),
    )
    if fresh:
        set_cookie(request, response, LOGIN_COOKIE, secret, LOGIN_FORM_S)
    if isinstance(error, ApiError):
        response.headers.update(error.headers)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request, next: Annotated[str, Query(max_length=MAX_FORM_CHARS)] = PREFIX
) -> HTMLResponse:
    return _login_page(request, next_=next)


@router.post("/login", response_model=None)
def login(
    request: Request,
    p: PlatformDep,
    limiter: LimiterDep,
    username: FormText = "",
    password: FormText = "",
    csrf: FormText = "",
    next: FormText = PREFIX,
) -> Response:
    """The API's login (its rate limits, its audit of failures); the token goes to a cookie."""
    check_login_csrf(request, csrf)
    try:
        body = api.Credentials.model_validate({"username": username, "password": password})
        opened = api.login(body, request, p, limiter)
    except MicroloanError as exc:
        return _login_page(request, next_=next, username=username[:40], error=exc)
    response = RedirectResponse(safe_next(next), status_code=303)
    max_age = int(p.settings.operator_session_hours * 3600)
    set_cookie(request, response, SESSION_COOKIE, str(opened["token"]), max_age)
    clear_cookie(request, response, LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, session: FormSessionDep, p: PlatformDep) -> RedirectResponse:
    api.logout(session.api_session, p)
    response = RedirectResponse(f"{PREFIX}/login?done=logout", status_code=303)
    clear_cookie(request, response, SESSION_COOKIE)
    return response


# -- home ------------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def home(request: Request, session: SessionDep) -> HTMLResponse:
    return page(request, "home.html", session, expires_at=session.expires_at.isoformat())


# -- customers -------------------------------------------------------------------------------------


@router.get("/customers", response_class=HTMLResponse)
def customers(
    request: Request,
    session: SessionDep,
    p: PlatformDep,
    q: Annotated[str, Query(max_length=40)] = "",
) -> HTMLResponse:
    found = None
    if q.strip():
        found = api.customer_search(session.operator, p, q, 20)["customers"]
    else:  # the empty form reads nothing, but is refused (and audited) like a search
        api.check_roles(p, session.operator, api.CUSTOMER_READERS, "customer.search", "customers")
    return page(request, "customers.html", session, q=q, found=found)


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
def customer(
    request: Request, session: SessionDep, p: PlatformDep, customer_id: Id
) -> HTMLResponse:
    view = api.customer_360(session.operator, p, customer_id)
    may_propose = session.operator.roles.intersection(PROPOSAL_ROLES["line.change"])
    return page(request, "customer.html", session, c=view, may_propose=bool(may_propose))


@router.get("/loans/{loan_id}", response_class=HTMLResponse)
def loan(request: Request, session: SessionDep, p: PlatformDep, loan_id: Id) -> HTMLResponse:
    view = api.loan_detail(session.operator, p, loan_id)
    return page(request, "loan.html", session, loan=view)


# -- manual review ---------------------------------------------------------------------------------


@router.get("/reviews", response_class=HTMLResponse)
def review_queue(
    request: Request,
    session: SessionDep,
    p: PlatformDep,
    status: Literal["open", "approved", "declined"] = "open",
) -> HTMLResponse:
    cases = api.review_list(session.operator, p, status)["cases"]
    may_decide = bool(session.operator.roles.intersection(api.REVIEW_DECIDERS))
    return page(
        request,
        "reviews.html",
        session,
        cases=cases,
        status=status,
        may_decide=may_decide and status == "open",
        notice=_notice(request),
    )


@router.post("/reviews/{case_id}/decision")
def review_decide(
    session: FormSessionDep,
    p: PlatformDep,
    case_id: Id,
    decision: FormText = "",
    note: FormText = "",
) -> RedirectResponse:
    body = api.ReviewDecision.model_validate({"decision": decision, "note": note})
    answer = api.review_decide(session.operator, p, case_id, body)
    return _done("/reviews", f"review.{answer['status']}", case_id)


# -- maker-checker ---------------------------------------------------------------------------------


def _payload_rows(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """A proposal's payload for people: amounts in yuan, rates as daily rates, no empty keys."""
    rows = []
    for key, value in payload.items():
        if value is None:
            continue
        if key.endswith("_fen") and isinstance(value, int):
            rows.append((key.removesuffix("_fen"), format_yuan(value)))
        elif key == "rate_units" and isinstance(value, int):
            rows.append(("daily_rate", str(DailyRate(value))))
        else:
            rows.append((key, str(value)))
    return rows


def _may(op: Operator, kind: str) -> bool:
    return bool(op.roles.intersection(PROPOSAL_ROLES[kind]))


@router.get("/proposals", response_class=HTMLResponse)
def proposals(
    request: Request,
    session: SessionDep,
    p: PlatformDep,
    status: Literal["pending", "approved", "rejected", "all"] = "pending",
    customer_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    loan_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    op = session.operator
    found = api.proposal_list(op, p, None if status == "all" else status)["proposals"]
    for row in found:
        row["rows"] = _payload_rows(row["payload"])
        row["may_check"] = row["status"] == "pending" and _may(op, row["kind"])
    return page(
        request,
        "proposals.html",
        session,
        proposals=found,
        status=status,
        kinds={kind: _may(op, kind) for kind in PROPOSAL_ROLES},
        prefill={"customer_id": customer_id or "", "loan_id": loan_id or ""},
        notice=_notice(request),
    )


@router.post("/proposals")
def propose(
    session: FormSessionDep,
    p: PlatformDep,
    kind: FormText = "",
    customer_id: FormText = "",
    limit: FormText = "",
    daily_rate: FormText = "",
    event: FormText = "",
    loan_id: FormText = "",
    version: FormText = "",
    reason: FormText = "",
) -> RedirectResponse:
    """The maker's step, through the API's own request models and endpoint."""
    fields: dict[str, str] = {"kind": kind}
    if kind == "line.change":
        given = {"limit": limit, "daily_rate": daily_rate, "event": event}
        fields |= {"customer_id": customer_id, "reason": reason}
        fields |= {k: v.strip() for k, v in given.items() if v.strip()}
    elif kind == "loan.write_off":
        fields |= {"loan_id": loan_id, "reason": reason}
    else:
        fields |= {"version": version.strip()}
    body = _proposal_request.validate_python(fields)
    made = api.proposal_create(session.operator, p, body)
    return _done("/proposals", "proposed", int(made["proposal_id"]))


@router.post("/proposals/{proposal_id}/approve")
def approve(
    session: FormSessionDep, p: PlatformDep, proposal_id: Id, note: FormText = ""
) -> RedirectResponse:
    """The checker's step; the proposer is refused (403 ``proposal.same_operator``)."""
    api.proposal_approve(session.operator, p, proposal_id, api.Verdict(note=note))
    return _done("/proposals", "approved", proposal_id)


@router.post("/proposals/{proposal_id}/reject")
def reject(
    session: FormSessionDep, p: PlatformDep, proposal_id: Id, note: FormText = ""
) -> RedirectResponse:
    api.proposal_reject(session.operator, p, proposal_id, api.Verdict(note=note))
    return _done("/proposals", "rejected", proposal_id)


router.include_router(console_reports.router)
problems.not_found_pages(PREFIX, not_found_page)
