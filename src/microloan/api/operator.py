"""The operator API: a session (bearer token) per login, and what each role may see and do.

Every endpoint checks the operator's roles first (a refusal is audited and answered 403
``operator.forbidden``), then calls the service layer, and every action — reads of personal
data, the portfolio and the audit log included — is written to the append-only audit log.
The log has no update or delete endpoint. Personal data is shown masked only.

Who may do what (the tests check every endpoint against every role):

    endpoint                                   roles
    GET  /customers, /customers/{id},          customer_service collections risk_analyst
         /loans/{id}                           auditor administrator
    GET  /reviews                              risk_analyst auditor administrator
    POST /reviews/{id}/decision                risk_analyst administrator
    GET  /proposals                            risk_analyst finance collections auditor
                                               administrator
    POST /proposals                            by kind (``operators.PROPOSAL_ROLES``)
    POST /proposals/{id}/approve|reject        by the proposal's kind; never its proposer
    GET  /write-offs/candidates                finance collections auditor administrator
    GET  /eod/runs, /portfolio                 finance risk_analyst auditor administrator
    GET  /audit, /operators                    auditor administrator
    POST /operators                            administrator

The operator console (``api/console.py``) calls these endpoint functions directly, so that its
pages check the same roles and write the same audit lines.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from microloan.api.deps import client_address, get_limiter, get_platform
from microloan.api.problems import ApiError, InputRoute
from microloan.api.ratelimit import RateLimiter
from microloan.domain.money import parse_yuan
from microloan.domain.rates import DailyRate
from microloan.errors import RuleViolation
from microloan.service import (
    customer_view,
    eod_reports,
    lending,
    line_changes,
    models,
    operator_access,
    operators,
    reviews,
    write_offs,
)
from microloan.service.operators import PROPOSAL_ROLES, ROLES, AuthError, Operator
from microloan.service.platform import Platform

router = APIRouter(route_class=InputRoute)

CUSTOMER_READERS = ("customer_service", "collections", "risk_analyst", "auditor", "administrator")
REVIEW_READERS = ("risk_analyst", "auditor", "administrator")
REVIEW_DECIDERS = ("risk_analyst", "administrator")
PROPOSERS = tuple(sorted({r for roles in PROPOSAL_ROLES.values() for r in roles}))
PROPOSAL_READERS = (*PROPOSERS, "auditor")
WRITE_OFF_READERS = ("finance", "collections", "auditor", "administrator")
REPORT_READERS = ("finance", "risk_analyst", "auditor", "administrator")
AUDIT_READERS = ("auditor", "administrator")
ADMINISTRATORS = ("administrator",)

PlatformDep = Annotated[Platform, Depends(get_platform)]
LimiterDep = Annotated[RateLimiter, Depends(get_limiter)]
MAX_ID = 2**62  # ids are 64-bit signed integers in both databases; bigger ones do not exist
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
YUAN = r"^\d{1,9}(\.\d{1,2})?$"
_bearer = HTTPBearer(auto_error=False, description="The token from POST /v1/operator/session.")


# -- the session ---------------------------------------------------------------------------------


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=40)
    password: str = Field(min_length=1, max_length=256)


def _unauthorised(message: str) -> ApiError:
    return ApiError(
        401,
        message,
        code="operator.unauthorised",
        field="authorization",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _session(
    p: PlatformDep,
    limiter: LimiterDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> tuple[Operator, datetime, str]:
    if credentials is None:
        raise ApiError(
            401,
            "log in first: Authorization: Bearer <token>",
            code="operator.unauthorised",
            field="authorization",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return session_of_token(p, limiter, credentials.credentials)


def session_of_token(
    p: Platform, limiter: RateLimiter, token: str
) -> tuple[Operator, datetime, str]:
    """The live session of ``token`` (401 otherwise), counted against the operator's rate limit;
    shared with the console, whose token comes in a cookie."""
    try:
        op, expires_at = operator_access.session_operator(p, token)
    except AuthError as exc:
        raise _unauthorised(exc.message) from None
    limiter.hit("operator", str(op.operator_id), p.settings.rate_limit_operator)
    return op, expires_at, token


SessionDep = Annotated[tuple[Operator, datetime, str], Depends(_session)]


def current_operator(session: SessionDep) -> Operator:
    """The operator of the request's bearer token (401 without a live session)."""
    return session[0]


OperatorDep = Annotated[Operator, Depends(current_operator)]


@router.post("/session", summary="登录 Log in", status_code=201)
def login(
    body: Credentials, request: Request, p: PlatformDep, limiter: LimiterDep
) -> dict[str, Any]:
    """A bearer token for the operator (shown once); the same 401 for any wrong name or password.
    Limited per client address and per username, against password guessing."""
    address = client_address(request)
    rate = p.settings.rate_limit_operator_login
    limiter.hit("operator.login.address", address, rate)
    limiter.hit("operator.login.username", body.username.strip().lower(), rate)
    try:
        op = operators.authenticate(p, body.username, body.password)
    except AuthError:
        operator_access.login_failed(p, body.username, address=address)
        raise
    return operator_access.open_session(p, op, address=address)


@router.delete("/session", summary="退出 Log out")
def logout(session: SessionDep, p: PlatformDep) -> dict[str, Any]:
    op, _, token = session
    return operator_access.close_session(p, op, token)


@router.get("/me", summary="当前操作员 Who am I")
def me(session: SessionDep) -> dict[str, Any]:
    op, expires_at, _ = session
    return {
        "operator_id": op.operator_id,
        "username": op.username,
        "roles": sorted(op.roles),
        "session_expires_at": expires_at.isoformat(),
    }


# -- checks and the audit trail ------------------------------------------------------------------


def check_roles(
    p: Platform, op: Operator, roles: tuple[str, ...], action: str, subject: str
) -> None:
    """Refuse (403) an operator without one of ``roles``; the refusal is audited too."""
    try:
        op.require(*roles)
    except AuthError:
        p.transaction(
            lambda conn: operators.audit(
                conn, p, op, "access.denied", subject[:64], attempted=action, needs=list(roles)
            )
        )
        raise


def _audited(p: Platform, op: Operator, action: str, subject: str, **detail: Any) -> None:
    p.transaction(lambda conn: operators.audit(conn, p, op, action, subject[:64], **detail))


# -- customers -----------------------------------------------------------------------------------


@router.get("/customers", summary="客户查询 Customer search (masked)")
def customer_search(
    op: OperatorDep,
    p: PlatformDep,
    q: Annotated[str, Query(min_length=1, max_length=40, description="id, phone last 4, name")],
    limit: Annotated[int, Query(ge=1, le=customer_view.MAX_RESULTS)] = 20,
) -> dict[str, Any]:
    check_roles(p, op, CUSTOMER_READERS, "customer.search", "customers")
    found = customer_view.search(p, q, limit=limit)
    kind = customer_view.search_kind(q)
    shown = customer_view.mask_name(q) if kind == "name" else q.strip()
    ids = [c["customer_id"] for c in found]
    _audited(p, op, "customer.search", "customers", by=kind, q=shown, customers=ids)
    return {"customers": found}


@router.get("/customers/{customer_id}", summary="客户全景 Customer 360 (masked)")
def customer_360(op: OperatorDep, p: PlatformDep, customer_id: Id) -> dict[str, Any]:
    subject = f"customer:{customer_id}"
    check_roles(p, op, CUSTOMER_READERS, "customer.view", subject)
    view = customer_view.overview(p, customer_id)
    _audited(p, op, "customer.view", subject)
    return view


@router.get("/loans/{loan_id}", summary="借据 A loan with its schedule")
def loan_detail(op: OperatorDep, p: PlatformDep, loan_id: Id) -> dict[str, Any]:
    subject = f"loan:{loan_id}"
    check_roles(p, op, CUSTOMER_READERS, "loan.view", subject)
    view = lending.show_loan(p, loan_id)
    _audited(p, op, "loan.view", subject, customer_id=view["customer_id"])
    return view


# -- manual review ---------------------------------------------------------------------------------


class ReviewDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "decline"]
    note: str = Field(default="", max_length=200)


@router.get("/reviews", summary="人工审核队列 Manual review queue")
def review_list(
    op: OperatorDep,
    p: PlatformDep,
    status: Literal["open", "approved", "declined"] = "open",
) -> dict[str, Any]:
    check_roles(p, op, REVIEW_READERS, "review.queue.view", "reviews")
    cases = reviews.review_queue(p, status=status)
    _audited(p, op, "review.queue.view", "reviews", status=status, cases=len(cases))
    return {"cases": cases}


@router.post("/reviews/{case_id}/decision", summary="审核决定 Decide a case")
def review_decide(
    op: OperatorDep, p: PlatformDep, case_id: Id, body: ReviewDecision
) -> dict[str, Any]:
    check_roles(p, op, REVIEW_DECIDERS, "review.decide", f"case:{case_id}")
    # the service writes the decision and its audit line in one transaction
    return reviews.decide_review(p, op, case_id, approve=body.decision == "approve", note=body.note)


# -- maker-checker proposals -------------------------------------------------------------------


class LineChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["line.change"]
    customer_id: int = Field(ge=1, le=2**62)
    limit: str | None = Field(default=None, pattern=YUAN, description="new limit, yuan")
    daily_rate: str | None = Field(default=None, pattern=r"^0\.\d{1,8}$", examples=["0.0003"])
    event: Literal["freeze", "unfreeze"] | None = None
    reason: str = Field(min_length=1, max_length=200)


class WriteOff(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["loan.write_off"]
    loan_id: int = Field(ge=1, le=2**62)
    reason: str = Field(min_length=1, max_length=200)


class ModelActivation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["model.activate"]
    version: str = Field(min_length=1, max_length=64)


ProposalRequest = Annotated[LineChange | WriteOff | ModelActivation, Field(discriminator="kind")]


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=200)


@router.get("/proposals", summary="待审批 Proposals")
def proposal_list(
    op: OperatorDep,
    p: PlatformDep,
    status: Literal["pending", "approved", "rejected"] | None = None,
) -> dict[str, Any]:
    check_roles(p, op, PROPOSAL_READERS, "proposal.list", "proposals")
    found = operators.list_proposals(p, status=status)
    _audited(p, op, "proposal.list", "proposals", status=status, proposals=len(found))
    return {"proposals": found}


@router.post("/proposals", summary="提议 Propose a change (maker)", status_code=201)
def proposal_create(
    op: OperatorDep, p: PlatformDep, body: Annotated[ProposalRequest, Body()]
) -> dict[str, Any]:
    check_roles(p, op, PROPOSAL_ROLES[body.kind], f"{body.kind}.propose", "proposals")
    # the service checks the subject, records the proposal and audits it in one transaction
    if isinstance(body, LineChange):
        return line_changes.propose_change(
            p,
            op,
            body.customer_id,
            limit_fen=None if body.limit is None else parse_yuan(body.limit, field="limit"),
            rate=None if body.daily_rate is None else DailyRate.parse(body.daily_rate),
            event=body.event,
            reason=body.reason,
        )
    if isinstance(body, WriteOff):
        return write_offs.propose_write_off(p, op, body.loan_id, reason=body.reason)
    return models.propose_activation(p, op, body.version)


def _decide(p: Platform, op: Operator, proposal_id: int, *, approve: bool, note: str) -> Any:
    """The checker's step; the service refuses a role the proposal's kind does not allow and
    the proposer: both are answered 403 and audited (the service's transaction rolled back)."""
    action = f"proposal.{'approve' if approve else 'reject'}"
    subject = f"proposal:{proposal_id}"
    check_roles(p, op, PROPOSERS, action, subject)
    try:
        return operators.decide(p, op, proposal_id, approve=approve, note=note)
    except (AuthError, RuleViolation) as exc:
        if exc.code not in ("operator.forbidden", "proposal.same_operator"):
            raise
        _audited(p, op, "access.denied", subject, attempted=action, refused=exc.code)
        raise ApiError(403, exc.message, code=exc.code, field=exc.field) from None


@router.post("/proposals/{proposal_id}/approve", summary="复核通过 Approve (checker)")
def proposal_approve(
    op: OperatorDep, p: PlatformDep, proposal_id: Id, body: Verdict | None = None
) -> dict[str, Any]:
    note = "" if body is None else body.note
    result: dict[str, Any] = _decide(p, op, proposal_id, approve=True, note=note)
    return result


@router.post("/proposals/{proposal_id}/reject", summary="复核驳回 Reject (checker)")
def proposal_reject(
    op: OperatorDep, p: PlatformDep, proposal_id: Id, body: Verdict | None = None
) -> dict[str, Any]:
    note = "" if body is None else body.note
    result: dict[str, Any] = _decide(p, op, proposal_id, approve=False, note=note)
    return result


@router.get("/write-offs/candidates", summary="核销候选 Write-off candidates")
def write_off_candidates(
    op: OperatorDep,
    p: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    check_roles(p, op, WRITE_OFF_READERS, "write_off.candidates.view", "write_offs")
    found = write_offs.candidates(p, limit=limit)
    _audited(p, op, "write_off.candidates.view", "write_offs", loans=len(found["candidates"]))
    return found


# -- end of day and the portfolio ----------------------------------------------------------------


@router.get("/eod/runs", summary="日终 End-of-day runs")
def eod_runs(
    op: OperatorDep, p: PlatformDep, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> dict[str, Any]:
    check_roles(p, op, REPORT_READERS, "eod.view", "eod")
    status = eod_reports.eod_status(p, limit=limit)
    _audited(p, op, "eod.view", "eod", runs=len(status["runs"]))
    return status


@router.get("/portfolio", summary="资产质量 Portfolio figures of a closed date")
def portfolio(
    op: OperatorDep,
    p: PlatformDep,
    on: Annotated[date | None, Query(alias="date", description="YYYY-MM-DD")] = None,
) -> dict[str, Any]:
    check_roles(p, op, REPORT_READERS, "portfolio.view", "portfolio")
    figures = eod_reports.portfolio(p, on)
    _audited(p, op, "portfolio.view", "portfolio", date=figures["business_date"])
    return figures


# -- the audit log and operators -----------------------------------------------------------------


@router.get("/audit", summary="审计日志 The audit log (newest first)")
def audit_log(
    op: OperatorDep,
    p: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=operator_access.MAX_AUDIT_ROWS)] = 100,
    subject: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=40)] = None,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> dict[str, Any]:
    check_roles(p, op, AUDIT_READERS, "audit.view", "audit")
    entries = operator_access.audit_entries(
        p, limit=limit, subject=subject, action=action, before_id=before_id
    )
    _audited(p, op, "audit.view", "audit", of_subject=subject, of_action=action, rows=len(entries))
    return {"entries": entries}


class NewOperator(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=3, max_length=40, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    password: str = Field(min_length=12, max_length=256)
    roles: list[str] = Field(min_length=1, max_length=len(ROLES), examples=[list(ROLES[:1])])
    display_name: str = Field(default="", max_length=60)


@router.get("/operators", summary="操作员 Operators")
def operator_list(op: OperatorDep, p: PlatformDep) -> dict[str, Any]:
    check_roles(p, op, (*ADMINISTRATORS, "auditor"), "operator.list", "operators")
    found = operators.list_operators(p)
    _audited(p, op, "operator.list", "operators", operators=len(found))
    return {"operators": found}


@router.post("/operators", summary="新增操作员 Create an operator", status_code=201)
def operator_create(op: OperatorDep, p: PlatformDep, body: NewOperator) -> dict[str, Any]:
    check_roles(p, op, ADMINISTRATORS, "operator.create", "operators")
    if body.username.lower() in body.password.lower():  # the service checks length and mix
        raise ApiError(
            422,
            "the password must not contain the username",
            code="input.invalid",
            field="password",
        )
    made = operators.create_operator(
        p, body.username, body.password, list(body.roles), display_name=body.display_name
    )
    # the service's own line names no operator: this one says who created it
    _audited(p, op, "operator.created", f"operator:{made['operator_id']}", roles=made["roles"])
    return made
