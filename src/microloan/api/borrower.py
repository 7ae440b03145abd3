"""The borrower API: what a channel user does through their channel's signed gateway.

Every endpoint depends on ``gateway.borrower``; the customer is the one the channel user was
verified as, never one named in the request. Another customer's loan, decision or card answers
404 as if it did not exist (403 would tell that it does). Money is yuan in strings ("1000.00").
Money-moving endpoints take an ``Idempotency-Key`` header, kept per customer.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from microloan.api.deps import get_platform
from microloan.api.gateway import Borrower, GatewayRoute, borrower
from microloan.api.problems import ApiError
from microloan.domain.money import parse_yuan
from microloan.domain.schedule import Method
from microloan.errors import IdempotencyConflict, InvalidInput, NotFound
from microloan.service import decisions, lending, onboarding
from microloan.service.platform import Platform
from microloan.service.quote import quote, quote_view

router = APIRouter(route_class=GatewayRoute)  # the signature is checked before the body

IDEMPOTENCY_HEADER = "Idempotency-Key"
KEY_RE = re.compile(r"[\x21-\x7e]{1,64}")  # printable ASCII, no spaces
# decision details a borrower is not shown: the fraud signals and the model's internals
HIDDEN_REASON_PREFIX = "fraud."

Caller = Annotated[Borrower, Depends(borrower)]
Plat = Annotated[Platform, Depends(get_platform)]
IdemKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        # optional to the validator only, so that its absence is answered idempotency.missing
        description="Required: 1–64 printable ASCII characters, kept per customer; "
        "without it the request is refused (422 idempotency.missing).",
    ),
]
PositiveId = Annotated[int, Path(ge=1, le=2**62)]


class Out(BaseModel):
    """An answer: the fields named are always there; the service may add more."""

    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------------------------------------
# Request and response bodies


class IdentityIn(BaseModel):
    name: str = Field(min_length=2, max_length=40, examples=["张三"])
    id_number: str = Field(min_length=15, max_length=18, examples=["440305199003071234"])
    phone: str | None = Field(default=None, max_length=20, examples=["13800138000"])
    device_id: str | None = Field(default=None, max_length=64)


class IdentityOut(Out):
    customer_id: int
    id_number: str  # masked
    age: int
    linked_existing_customer: bool
    phone: str | None = None  # masked


class PhoneIn(BaseModel):
    phone: str = Field(max_length=20, examples=["13800138000"])


class PhoneOut(Out):
    customer_id: int
    phone: str  # masked


class CardIn(BaseModel):
    card_number: str = Field(max_length=32, examples=["6222020000123456789"])
    default: bool = False


class Card(BaseModel):
    card_id: int
    card_number: str  # masked
    bank: str
    card_type: str
    default: bool


class CardsOut(Out):
    customer_id: int
    cards: list[Card]


class ConsentIn(BaseModel):
    kind: str = Field(max_length=32, examples=["loan_agreement"])
    version: str | None = Field(default=None, max_length=16)


class ConsentState(BaseModel):
    current_version: str
    granted: bool


class ConsentsOut(Out):
    customer_id: int
    consents: dict[str, ConsentState]


class ProfileOut(Out):
    customer_id: int
    name: str
    id_number: str  # masked
    phone: str | None  # masked
    cards: list[Card]
    consents: dict[str, ConsentState]


class LineOut(Out):
    customer_id: int
    status: str
    limit: str
    available: str
    outstanding_principal: str
    open_loans: int
    daily_rate: str
    overdue_blocked: bool


class ApplicationIn(BaseModel):
    device_id: str | None = Field(default=None, max_length=64)


class DecisionOut(BaseModel):
    decision_id: int
    outcome: str
    approved: bool
    limit: str | None = None
    daily_rate: str | None = None
    annual_simple_rate: str | None = None
    apr_example: str | None = None
    reasons: list[str] = []
    business_date: str | None = None


class DrawIn(BaseModel):
    amount: str = Field(max_length=20, examples=["1000.00"])
    term_months: int = Field(ge=1, le=36, examples=[12])
    method: str = Field(default="equal_principal", max_length=20)


class Installment(BaseModel):
    period: int
    due_date: str
    days: int
    principal: str
    interest: str
    total: str


class QuoteOut(Out):
    principal: str
    term_months: int
    method: str
    drawn_on: str
    installments: list[Installment]
    total_interest: str
    daily_rate: str
    annual_simple_rate: str
    apr: str


class DrawOut(Out):
    loan_id: int
    status: str
    principal: str
    term_months: int
    method: str
    drawn_on: str
    daily_rate: str
    annual_simple_rate: str
    apr: str
    first_due_date: str


class LoanSummary(BaseModel):
    loan_id: int
    status: str
    principal: str
    principal_outstanding: str
    term_months: int
    method: str
    drawn_on: str
    closed_on: str | None


class LoansOut(BaseModel):
    customer_id: int
    loans: list[LoanSummary]


class LoanOut(Out):
    loan_id: int
    status: str
    principal: str
    term_months: int
    method: str
    drawn_on: str
    closed_on: str | None
    daily_rate: str
    annual_simple_rate: str
    apr: str
    as_of: str
    dpd: int
    principal_outstanding: str
    payoff: str
    schedule: list[dict[str, Any]]


class PayoffOut(Out):
    loan_id: int
    date: str
    payoff: str
    principal: str
    interest: str
    penalty: str


class RepaymentIn(BaseModel):
    amount: str = Field(max_length=20, examples=["1000.00"])
    loan_id: int | None = Field(default=None, ge=1, le=2**62)


class RepaymentOut(Out):
    customer_id: int
    amount: str
    business_date: str
    loans: list[dict[str, Any]]


# ---------------------------------------------------------------------------------------------
# Helpers


def _customer(b: Borrower) -> int:
    """The caller's customer; a channel user who has not verified an identity has none yet."""
    if b.customer_id is None:
        raise NotFound(
            "verify your identity first (POST /v1/onboarding/identity)",
            code="customer.not_verified",
            field="customer",
        )
    return b.customer_id


def _service_key(customer_id: int, header: str | None) -> str:
    """The service's idempotency key: the header's, kept apart per customer."""
    if header is None or not header.strip():
        raise ApiError(
            422,
            f"the {IDEMPOTENCY_HEADER} header is required on a request that moves money",
            code="idempotency.missing",
            field=IDEMPOTENCY_HEADER,
        )
    if not KEY_RE.fullmatch(header):
        raise ApiError(
            422,
            "an idempotency key is 1–64 printable ASCII characters",
            code="idempotency.invalid",
            field=IDEMPOTENCY_HEADER,
        )
    return f"api:{customer_id}:{header}"


def _conflict_on_header(exc: IdempotencyConflict, key: str, header: str) -> IdempotencyConflict:
    """The service's refusal, naming the header and the caller's own key, never the key as
    the service keeps it (``api:{customer}:{key}``)."""
    message = exc.message.replace(repr(key), repr(header))
    if key in message:  # worded otherwise than expected: say less rather than show it
        message = f"the {IDEMPOTENCY_HEADER} {header!r} was already used for another request"
    return IdempotencyConflict(message, code=exc.code, field=IDEMPOTENCY_HEADER)


def _no_such_loan(loan_id: int) -> NotFound:
    """A loan of another customer is refused exactly as one that does not exist."""
    return NotFound(f"loan {loan_id} does not exist", code="loan.not_found", field="loan")


def _method(text: str) -> Method:
    return Method.parse(text, field="method")


def _borrower_decision(d: dict[str, Any]) -> DecisionOut:
    limit = d.get("limit")
    return DecisionOut(
        decision_id=d["decision_id"],
        outcome=d["outcome"],
        approved=d["outcome"] == "approved",
        limit=limit,
        daily_rate=d.get("daily_rate"),
        annual_simple_rate=d.get("annual_simple_rate"),
        apr_example=d.get("apr_example"),
        reasons=[r for r in d.get("reasons", []) if not r.startswith(HIDDEN_REASON_PREFIX)],
        business_date=d.get("business_date"),
    )


# ---------------------------------------------------------------------------------------------
# Me: profile, line, consents


@router.get("/me", response_model=ProfileOut, summary="我的资料 My profile (masked)")
def me(b: Caller, p: Plat) -> dict[str, Any]:
    return onboarding.profile(p, _customer(b), steps=False)  # the audit trail is the operators'


@router.get("/me/line", response_model=LineOut, summary="我的额度 My credit line")
def my_line(b: Caller, p: Plat) -> dict[str, Any]:
    with p.reading() as conn:
        return lending.line_summary(conn, _customer(b))


@router.get("/me/consents", response_model=ConsentsOut, summary="我的授权 My consents")
def my_consents(b: Caller, p: Plat) -> dict[str, Any]:
    cid = _customer(b)
    with p.reading() as conn:
        return onboarding.consent_list(conn, p, cid)


@router.post("/me/consents", response_model=ConsentsOut, summary="授权 Grant a consent")
def grant_consent(body: ConsentIn, b: Caller, p: Plat) -> dict[str, Any]:
    return onboarding.grant_consent(p, _customer(b), body.kind, version=body.version, source="api")


@router.delete(
    "/me/consents/{kind}", response_model=ConsentsOut, summary="撤回授权 Withdraw a consent"
)
def withdraw_consent(
    kind: Annotated[str, Path(max_length=32)], b: Caller, p: Plat
) -> dict[str, Any]:
    return onboarding.withdraw_consent(p, _customer(b), kind)


# ---------------------------------------------------------------------------------------------
# Onboarding


@router.post("/onboarding/identity", response_model=IdentityOut, summary="实名认证 Verify identity")
def verify_identity(body: IdentityIn, b: Caller, p: Plat) -> dict[str, Any]:
    place = p.providers.location.locate(body.device_id) if body.device_id else None
    out = onboarding.verify_identity(
        p,
        channel_code=b.channel,
        open_id=b.open_id,
        name=body.name,
        id_number=body.id_number,
        source="api",
        device_id=body.device_id,
        location=None if place is None else (place.lat, place.lon),
    )
    if body.phone is not None:
        out["phone"] = onboarding.set_phone(p, int(out["customer_id"]), body.phone)["phone"]
    return out


@router.post("/onboarding/phone", response_model=PhoneOut, summary="手机号 Set the phone")
def set_phone(body: PhoneIn, b: Caller, p: Plat) -> dict[str, Any]:
    return onboarding.set_phone(p, _customer(b), body.phone)


@router.post("/onboarding/cards", response_model=CardsOut, summary="绑卡 Bind a bank card")
def bind_card(body: CardIn, b: Caller, p: Plat) -> dict[str, Any]:
    return onboarding.bind_card(
        p,
        _customer(b),
        body.card_number,
        rail=p.providers.holder_verification,
        make_default=body.default,
    )


@router.get("/onboarding/cards", response_model=CardsOut, summary="我的银行卡 My cards")
def cards(b: Caller, p: Plat) -> dict[str, Any]:
    cid = _customer(b)
    with p.reading() as conn:
        return onboarding.card_list(conn, cid)


@router.post(
    "/onboarding/cards/{card_id}/default",
    response_model=CardsOut,
    summary="默认卡 Make a card the default",
)
def default_card(card_id: PositiveId, b: Caller, p: Plat) -> dict[str, Any]:
    return onboarding.set_default_card(p, _customer(b), card_id)


@router.delete("/onboarding/cards/{card_id}", response_model=CardsOut, summary="解绑 Unbind a card")
def unbind_card(card_id: PositiveId, b: Caller, p: Plat) -> dict[str, Any]:
    return onboarding.unbind_card(p, _customer(b), card_id)


# ---------------------------------------------------------------------------------------------
# Applications


@router.post(
    "/applications",
    response_model=DecisionOut,
    status_code=201,
    summary="申请额度 Apply for a line",
)
def apply(b: Caller, p: Plat, body: ApplicationIn | None = None) -> DecisionOut:
    device = body.device_id if body is not None else None
    out = decisions.apply(p, _customer(b), b.channel, device_id=device)
    return _borrower_decision(out)


@router.get(
    "/applications/{decision_id}", response_model=DecisionOut, summary="申请结果 A decision"
)
def show_decision(decision_id: PositiveId, b: Caller, p: Plat) -> DecisionOut:
    cid = _customer(b)
    try:
        out = decisions.show_decision(p, decision_id)
    except NotFound:
        out = None
    if out is None or out["customer_id"] != cid:
        raise NotFound(f"no decision {decision_id}", field="decision")
    return _borrower_decision(out)


# ---------------------------------------------------------------------------------------------
# Draws, loans, repayments


@router.post("/draws/quote", response_model=QuoteOut, summary="试算 Quote a draw")
def quote_draw(body: DrawIn, b: Caller, p: Plat) -> dict[str, Any]:
    """The schedule, daily rate, annual simple rate and APR of a draw at the line's rate; no
    money moves."""
    cid = _customer(b)
    amount_fen = parse_yuan(body.amount, field="amount")
    if body.term_months not in p.settings.terms:
        terms = ", ".join(str(t) for t in p.settings.terms)
        raise InvalidInput(f"a term is one of {terms} months", field="term_months")
    with p.reading() as conn:
        rate, today = lending.line_rate_and_today(conn, p, cid)
    return quote_view(quote(amount_fen, body.term_months, rate, _method(body.method), today))


@router.post(
    "/draws",
    response_model=DrawOut,
    status_code=201,
    responses={202: {"model": DrawOut, "description": "Accepted: paid by `microloan worker`"}},
    summary="借款 Draw",
)
def draw(
    body: DrawIn, b: Caller, p: Plat, response: Response, idempotency_key: IdemKey = None
) -> dict[str, Any]:
    """Disbursed before the answer on the embedded SQLite database; elsewhere accepted
    (``pending``, answered 202) and paid by ``microloan worker``."""
    cid = _customer(b)
    key = _service_key(cid, idempotency_key)
    amount_fen = parse_yuan(body.amount, field="amount")
    method = _method(body.method)
    pay_now = p.engine.dialect.name == "sqlite"

    def consented(conn: sa.Connection) -> None:  # not asked of a replay: it answers as before
        onboarding.require_consents(conn, p, cid, "loan_agreement")

    try:
        out = lending.draw(
            p, cid, amount_fen, body.term_months, method, key, pay_now=pay_now, first=consented
        )
    except IdempotencyConflict as exc:
        raise _conflict_on_header(exc, key, str(idempotency_key)) from None
    if out.get("status") == "pending":
        response.status_code = 202
    return out


@router.get("/loans", response_model=LoansOut, summary="我的借款 My loans")
def loans(b: Caller, p: Plat) -> dict[str, Any]:
    """Newest first: the open loans, then the history."""
    return lending.list_loans(p, _customer(b))


@router.get("/loans/{loan_id}", response_model=LoanOut, summary="借款详情 A loan and schedule")
def show_loan(loan_id: PositiveId, b: Caller, p: Plat) -> dict[str, Any]:
    return lending.show_loan(p, loan_id, customer_id=_customer(b))


@router.get(
    "/loans/{loan_id}/payoff", response_model=PayoffOut, summary="结清金额 What clears a loan"
)
def payoff(loan_id: PositiveId, b: Caller, p: Plat) -> dict[str, Any]:
    return lending.payoff(p, loan_id, customer_id=_customer(b))


@router.post("/repayments", response_model=RepaymentOut, status_code=201, summary="还款 Repay")
def repay(body: RepaymentIn, b: Caller, p: Plat, idempotency_key: IdemKey = None) -> dict[str, Any]:
    """One loan, or every open loan (no ``loan_id``) in the rulebook's order."""
    cid = _customer(b)
    key = _service_key(cid, idempotency_key)
    amount_fen = parse_yuan(body.amount, field="amount")
    try:
        return lending.repay(p, cid, body.loan_id, amount_fen, key, source="borrower")
    except IdempotencyConflict as exc:
        raise _conflict_on_header(exc, key, str(idempotency_key)) from None
    except NotFound as exc:  # the service names the customer; the borrower hears of the loan
        if exc.code != "loan.not_found":
            raise
        raise _no_such_loan(int(body.loan_id or 0)) from None
