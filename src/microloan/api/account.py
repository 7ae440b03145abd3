"""The borrower pages (``/app``): onboarding, apply, draw, repay, loans and consents, for phones
first, Chinese with an English switch and an elderly mode.

In production a borrower reaches these pages inside their channel (WeChat, QQ), whose gateway
vouches for the channel user. On the embedded default a **demo login** stands in for the
gateway: pick a channel user and the platform keeps a cookie signed with that channel's
gateway secret (HMAC-SHA256 over channel, open id and expiry). It is on by default only on the
SQLite embedded database (``MICROLOAN_DEMO_LOGIN`` overrides).

Every form that changes something carries a CSRF token (an HMAC of the session cookie), and
every money-moving form carries an idempotency key made when the form was shown, so a double
submit pays or draws once. The pages call the same services as the borrower API. Text holding
U+0000 anywhere in a page's path, query or form is refused before anything else runs (422, a
page naming the field: ``PageRoute``), as the API and the console refuse it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import quote as url_quote

from fastapi import APIRouter, Depends, FastAPI, Form, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from microloan.api import problems
from microloan.api.account_text import TEXT
from microloan.api.deps import get_limiter, get_platform
from microloan.api.gateway import CHANNEL_MAX, OPEN_ID_MAX, channel_secret
from microloan.api.pages import render, templates
from microloan.api.problems import invalid_input, nul_form_field, nul_refused, status_of
from microloan.api.ratelimit import RateLimiter
from microloan.domain.money import format_yuan, parse_yuan
from microloan.domain.rates import DailyRate, format_percent_bp100
from microloan.domain.schedule import Method
from microloan.errors import MicroloanError, NotFound
from microloan.service import borrower_view, decisions, invitations, lending, onboarding
from microloan.service.clock import read_clock
from microloan.service.invitation_support import valid_open_id
from microloan.service.platform import Platform
from microloan.service.quote import quote, quote_view


class PageRoute(APIRoute):
    """The borrower pages' route: text holding U+0000 in the path, query or form is refused
    with a page (422, naming the field) before the endpoint runs, so before the sign-in, the
    CSRF check and any service: no name, code or key means it, and PostgreSQL can neither
    store nor compare it (the console's routes and the API refuse it alike). A form or address
    that fails validation (a field missing, too long, not a number) gets the same page, not the
    API's problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            field = await nul_form_field(request)
            if field is not None:
                return _failed(request, "error.html", None, nul_refused(field))
            try:
                return await handler(request)
            except RequestValidationError as exc:  # a form or address the page cannot take
                return _failed(request, "error.html", None, invalid_input(exc.errors()))

        return checked


def not_found_page(request: Request) -> HTMLResponse:
    """A path under /app that no page has: a page in the borrower pages' layout, linking home,
    rather than the API's problem+json."""
    exc = NotFound("没有这个页面 there is no such page", code="page.not_found")
    return _failed(request, "error.html", None, exc)


router = APIRouter(route_class=PageRoute)

COOKIE = "ml_borrower"
SESSION_S = 12 * 3600
KEY_BYTES = 16
SOURCE = "page"

Plat = Annotated[Platform, Depends(get_platform)]
Limiter = Annotated[RateLimiter, Depends(get_limiter)]
FormText = Annotated[str, Form(max_length=64)]
LoanId = Annotated[int, Path(ge=1, le=2**62)]


@dataclass(frozen=True)
class Session:
    """The signed-in channel user, their customer once verified, and the forms' CSRF token."""

    channel: str
    open_id: str
    customer_id: int | None
    csrf: str


class SignInRequired(Exception):
    """Raised by ``signed_in``: answered with a redirect to the demo login."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def daily_percent(rate: str) -> str:
    """A daily rate as a percentage, exactly: "0.0005" → "0.05%"."""
    return f"{(Decimal(rate) * 100).normalize():f}%"


def annual_percent(rate: str) -> str:
    """The annual simple rate (× 360) of a daily rate, as a percentage: "0.0005" → "18.00%"."""
    return format_percent_bp100(DailyRate.parse(rate).annual_simple_bp100())


templates.env.filters["daily_percent"] = daily_percent
templates.env.filters["annual_percent"] = annual_percent


def install(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def _to_login(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(f"/app/login?next={url_quote(exc.next_path)}", status_code=303)


# ---------------------------------------------------------------------------------------------
# The demo login's session cookie


def demo_login_on(p: Platform) -> bool:
    flag = p.settings.demo_login
    return (not p.is_postgres) if flag is None else flag


def _mac(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def session_cookie(p: Platform, channel: str, open_id: str, *, now_s: float) -> str:
    payload = base64.urlsafe_b64encode(
        json.dumps([channel, open_id, int(now_s) + SESSION_S]).encode()
    ).decode()
    return f"{payload}.{_mac(channel_secret(p, channel), payload)}"


def _read_cookie(p: Platform, value: str, now_s: float) -> tuple[str, str, bytes] | None:
    payload, _, mac = value.partition(".")
    try:
        channel, open_id, expires = json.loads(base64.urlsafe_b64decode(payload.encode()))
        secret = channel_secret(p, str(channel))
    except (ValueError, TypeError, binascii.Error, MicroloanError):
        return None
    if not hmac.compare_digest(_mac(secret, payload), mac) or int(expires) < now_s:
        return None
    return str(channel), str(open_id), secret


def signed_in(request: Request, p: Plat, limiter: Limiter) -> Session:
    """The dependency of every page behind the login."""
    value = request.cookies.get(COOKIE)
    found = _read_cookie(p, value, time.time()) if value and demo_login_on(p) else None
    if found is None:
        query = request.url.query
        raise SignInRequired(request.url.path + (f"?{query}" if query else ""))
    channel, open_id, secret = found
    limiter.hit("borrower", f"{channel}:{open_id}", p.settings.rate_limit_borrower)
    customer_id = borrower_view.customer_of(p, channel, open_id)
    return Session(channel, open_id, customer_id, _mac(secret, f"csrf|{value}")[:32])


Who = Annotated[Session, Depends(signed_in)]


def _check_csrf(who: Session, token: str) -> None:
    if not hmac.compare_digest(who.csrf, token):
        raise MicroloanError(
            "this form has expired: open the page again", code="page.csrf", field="csrf"
        )


def _customer(who: Session) -> int:
    if who.customer_id is None:
        raise onboarding.not_verified(0)
    return who.customer_id


def _page(request: Request, name: str, who: Session | None, **ctx: Any) -> HTMLResponse:
    return render(request, f"app/{name}", TEXT, who=who, **ctx)


def _failed(
    request: Request, name: str, who: Session | None, exc: Exception, **ctx: Any
) -> HTMLResponse:
    """The same page again, with what went wrong (and the status an API caller would get)."""
    err = exc if isinstance(exc, MicroloanError) else MicroloanError(str(exc), code="input")
    status = status_of(err) if err.code != "page.csrf" else 403
    return render(
        request,
        f"app/{name}",
        TEXT,
        status_code=status,
        who=who,
        error={"code": err.code, "message": err.message, "field": err.field},
        **ctx,
    )


def _to(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


@lru_cache(maxsize=4)
def _world(path: str) -> Any:
    from microloan.providers.simulated import SimulatedWorld  # numpy, polars: only when used

    return SimulatedWorld.load(path)


def _demo_person(p: Platform, who: Session) -> Any:
    """The synthetic person behind a demo channel user, to fill in the forms."""
    if not demo_login_on(p):
        return None
    try:
        return _world(p.settings.population_path).person_by_open_id(who.channel, who.open_id)
    except (OSError, ValueError, MicroloanError):
        return None


# ---------------------------------------------------------------------------------------------
# Login


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request, p: Plat, next: Annotated[str, Query(max_length=200)] = "/app"
) -> HTMLResponse:
    if not demo_login_on(p):
        return render(request, "app/login.html", TEXT, status_code=404, who=None, off=True)
    channels = [c["code"] for c in invitations.list_channels(p) if c.get("active", True)]
    people = {ch: borrower_view.personas(p, ch) for ch in channels}
    return _page(request, "login.html", None, channels=channels, people=people, next=next)


@router.post("/login")
def login(
    request: Request,
    p: Plat,
    channel: Annotated[str, Form(max_length=CHANNEL_MAX)],
    open_id: Annotated[str, Form(max_length=OPEN_ID_MAX)],
    next: Annotated[str, Form(max_length=200)] = "/app",
) -> Response:
    if not demo_login_on(p):
        return render(request, "app/login.html", TEXT, status_code=404, who=None, off=True)
    try:
        cookie = session_cookie(p, channel, valid_open_id(open_id), now_s=time.time())
    except MicroloanError as exc:
        return _failed(request, "login.html", None, exc, channels=[], people={}, next=next)
    # only a path of this site: never an address elsewhere
    target = next if next.startswith("/app") and "//" not in next else "/app"
    response = _to(target)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=SESSION_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(who: Who, csrf: FormText = "") -> Response:
    _check_csrf(who, csrf)
    response = _to("/app/login")
    response.delete_cookie(COOKIE)
    return response


# ---------------------------------------------------------------------------------------------
# Home, invitation, onboarding, consents, application


@router.get("", response_class=HTMLResponse)
def home(
    request: Request, who: Who, p: Plat, code: Annotated[str, Query(max_length=64)] = ""
) -> HTMLResponse:
    s = borrower_view.standing(p, who.channel, who.open_id)
    return _page(request, "home.html", who, s=s, code=code)


@router.post("/invitation", response_model=None)
def enter(request: Request, who: Who, p: Plat, code: FormText, csrf: FormText = "") -> Response:
    try:
        _check_csrf(who, csrf)
        person = _demo_person(p, who)
        device = None if person is None else person.device_id
        invitations.enter_with_code(p, who.channel, who.open_id, code, device_id=device)
    except MicroloanError as exc:
        s = borrower_view.standing(p, who.channel, who.open_id)
        return _failed(request, "home.html", who, exc, s=s, code=code)
    return _to("/app/onboarding")


@router.get("/onboarding", response_class=HTMLResponse)
def onboarding_page(request: Request, who: Who, p: Plat) -> HTMLResponse:
    return _onboarding(request, who, p)


def _onboarding(
    request: Request, who: Session, p: Platform, error: Exception | None = None
) -> HTMLResponse:
    s = borrower_view.standing(p, who.channel, who.open_id)
    person = _demo_person(p, who)
    ctx: dict[str, Any] = {"s": s, "person": person, "consent_kinds": _consent_kinds(p)}
    if error is not None:
        return _failed(request, "onboarding.html", who, error, **ctx)
    return _page(request, "onboarding.html", who, **ctx)


def _consent_kinds(p: Platform) -> list[str]:
    """The consents onboarding asks for: those an application needs."""
    return [k for k in sorted(p.settings.consent_versions) if k in borrower_view.APPLY_CONSENTS]


@router.post("/onboarding/{step}", response_model=None)
def onboarding_step(
    request: Request,
    who: Who,
    p: Plat,
    step: Annotated[str, Path(pattern="^(identity|phone|card|consents)$")],
    csrf: FormText = "",
    name: Annotated[str, Form(max_length=40)] = "",
    id_number: Annotated[str, Form(max_length=18)] = "",
    phone: Annotated[str, Form(max_length=20)] = "",
    card_number: Annotated[str, Form(max_length=32)] = "",
    agree: Annotated[list[str] | None, Form()] = None,
) -> Response:
    try:
        _check_csrf(who, csrf)
        if step == "identity":
            person = _demo_person(p, who)
            onboarding.verify_identity(
                p,
                channel_code=who.channel,
                open_id=who.open_id,
                name=name,
                id_number=id_number,
                source=SOURCE,
                device_id=None if person is None else person.device_id,
            )
        elif step == "phone":
            onboarding.set_phone(p, _customer(who), phone)
        elif step == "card":
            cid = _customer(who)
            rail = p.providers.holder_verification
            onboarding.bind_card(p, cid, card_number, rail=rail, make_default=True)
        else:
            cid = _customer(who)
            for kind in _consent_kinds(p):
                if kind in (agree or []):
                    onboarding.grant_consent(p, cid, kind, source=SOURCE)
    except MicroloanError as exc:
        return _onboarding(request, who, p, exc)
    return _to("/app/onboarding")


@router.get("/consents", response_class=HTMLResponse)
def consents_page(request: Request, who: Who, p: Plat) -> HTMLResponse:
    with p.reading() as conn:
        listed = onboarding.consent_list(conn, p, _customer(who))
    return _page(request, "consents.html", who, consents=listed["consents"])


@router.post("/consents", response_model=None)
def consent_change(
    request: Request,
    who: Who,
    p: Plat,
    kind: FormText,
    action: Annotated[str, Form(pattern="^(grant|withdraw)$")],
    csrf: FormText = "",
) -> Response:
    cid = _customer(who)
    try:
        _check_csrf(who, csrf)
        if action == "grant":
            onboarding.grant_consent(p, cid, kind, source=SOURCE)
        else:
            onboarding.withdraw_consent(p, cid, kind)
    except MicroloanError as exc:
        with p.reading() as conn:
            listed = onboarding.consent_list(conn, p, cid)
        return _failed(request, "consents.html", who, exc, consents=listed["consents"])
    return _to("/app/consents")


@router.post("/apply", response_model=None)
def apply(request: Request, who: Who, p: Plat, csrf: FormText = "") -> Response:
    try:
        _check_csrf(who, csrf)
        person = _demo_person(p, who)
        device = None if person is None else person.device_id
        decisions.apply(p, _customer(who), who.channel, device_id=device)
    except MicroloanError as exc:
        s = borrower_view.standing(p, who.channel, who.open_id)
        return _failed(request, "home.html", who, exc, s=s, code="")
    return _to("/app")


# ---------------------------------------------------------------------------------------------
# Draw: the form, the quote with its schedule and rates, the confirmation


def _draw_context(p: Platform, cid: int) -> dict[str, Any]:
    with p.reading() as conn:
        line = lending.line_summary(conn, cid)
        cards = onboarding.card_list(conn, cid)["cards"]
        agreed = onboarding.live_consent(conn, cid, "loan_agreement")
    return {
        "line": line,
        "terms": p.settings.terms,
        "min_draw": format_yuan(p.settings.min_draw_fen),
        "card": next((c for c in cards if c["default"]), cards[0] if cards else None),
        "agreed": agreed == p.settings.consent_versions["loan_agreement"],
    }


def _today(p: Platform) -> Any:
    with p.reading() as conn:
        return read_clock(conn, p.now).open_date


@router.get("/draw", response_class=HTMLResponse)
def draw_page(request: Request, who: Who, p: Plat) -> HTMLResponse:
    return _page(request, "draw.html", who, **_draw_context(p, _customer(who)), form={})


@router.get("/draw/quote", response_class=HTMLResponse)
def draw_quote(
    request: Request,
    who: Who,
    p: Plat,
    amount: Annotated[str, Query(max_length=20)],
    term: Annotated[int, Query(ge=1, le=36)],
    method: Annotated[str, Query(max_length=20)] = Method.EQUAL_INSTALLMENT.value,
) -> HTMLResponse:
    cid = _customer(who)
    ctx = _draw_context(p, cid)
    form = {"amount": amount, "term": term, "method": method}
    try:
        amount_fen = parse_yuan(amount, field="amount")
        rate = DailyRate.parse(ctx["line"]["daily_rate"])
        q = quote_view(
            quote(amount_fen, term, rate, Method.parse(method, field="method"), _today(p))
        )
        borrower_view.precheck_draw(p, cid, amount_fen, term)
    except MicroloanError as exc:
        return _failed(request, "draw.html", who, exc, **ctx, form=form)
    total = format_yuan(parse_yuan(q["principal"]) + parse_yuan(q["total_interest"]))
    key = secrets.token_urlsafe(KEY_BYTES)
    return _page(request, "quote.html", who, **ctx, q=q, form=form, key=key, total=total)


@router.post("/draw", response_model=None)
def draw(
    request: Request,
    who: Who,
    p: Plat,
    amount: Annotated[str, Form(max_length=20)],
    term: Annotated[int, Form(ge=1, le=36)],
    key: FormText,
    method: Annotated[str, Form(max_length=20)] = Method.EQUAL_INSTALLMENT.value,
    agree: Annotated[str, Form(max_length=8)] = "",
    csrf: FormText = "",
) -> Response:
    cid = _customer(who)
    try:
        _check_csrf(who, csrf)
        if agree == "yes":
            onboarding.grant_consent(p, cid, "loan_agreement", source=SOURCE)
        with p.reading() as conn:
            onboarding.require_consents(conn, p, cid, "loan_agreement")
        out = lending.draw(
            p,
            cid,
            parse_yuan(amount, field="amount"),
            term,
            Method.parse(method, field="method"),
            f"page:{cid}:{key}",
            pay_now=not p.is_postgres,
        )
    except MicroloanError as exc:
        form = {"amount": amount, "term": term, "method": method}
        ctx = _draw_context(p, cid)
        return _failed(request, "draw.html", who, exc, **ctx, form=form)
    return _to(f"/app/loans/{out['loan_id']}?drawn=1")


# ---------------------------------------------------------------------------------------------
# Loans and repayments


@router.get("/loans", response_class=HTMLResponse)
def loans_page(request: Request, who: Who, p: Plat) -> HTMLResponse:
    listed = lending.list_loans(p, _customer(who), limit=borrower_view.MAX_LOANS)
    return _page(request, "loans.html", who, loans=listed["loans"])


@router.get("/loans/{loan_id}", response_class=HTMLResponse)
def loan_page(
    request: Request,
    who: Who,
    p: Plat,
    loan_id: LoanId,
    drawn: Annotated[int, Query(ge=0, le=1)] = 0,
) -> HTMLResponse:
    cid = _customer(who)
    with p.reading() as conn:
        mine = borrower_view.owns_loan(conn, cid, loan_id)
    if not mine:
        exc = NotFound(f"loan {loan_id} does not exist", code="loan.not_found", field="loan")
        return _failed(request, "loan.html", who, exc, loan=None, drawn=False)
    return _page(request, "loan.html", who, loan=lending.show_loan(p, loan_id), drawn=bool(drawn))


def _repay_context(p: Platform, cid: int, chosen: str) -> dict[str, Any]:
    dues = borrower_view.payoffs(p, cid)
    total = sum(parse_yuan(d["payoff"]) for d in dues)
    by_id = {str(d["loan_id"]): d["payoff"] for d in dues}
    amount = by_id.get(chosen, format_yuan(total))
    return {
        "dues": dues,
        "total": format_yuan(total),
        "chosen": chosen if chosen in by_id else "all",
        "amount": amount,
        "key": secrets.token_urlsafe(KEY_BYTES),
    }


@router.get("/repay", response_class=HTMLResponse)
def repay_page(
    request: Request, who: Who, p: Plat, loan: Annotated[str, Query(max_length=20)] = "all"
) -> HTMLResponse:
    return _page(request, "repay.html", who, **_repay_context(p, _customer(who), loan))


@router.post("/repay", response_model=None)
def repay(
    request: Request,
    who: Who,
    p: Plat,
    amount: Annotated[str, Form(max_length=20)],
    key: FormText,
    loan: Annotated[str, Form(max_length=20)] = "all",
    csrf: FormText = "",
) -> Response:
    cid = _customer(who)
    try:
        _check_csrf(who, csrf)
        loan_id = None if loan == "all" else _own_loan_id(p, cid, loan)
        out = lending.repay(
            p, cid, loan_id, parse_yuan(amount, field="amount"), f"page:{cid}:{key}", source=SOURCE
        )
    except MicroloanError as exc:
        ctx = _repay_context(p, cid, loan)
        return _failed(request, "repay.html", who, exc, **{**ctx, "amount": amount})
    return _page(request, "repaid.html", who, out=out)


def _own_loan_id(p: Platform, cid: int, text: str) -> int:
    loan_id = int(text) if text.isdigit() and len(text) < 19 else 0
    with p.reading() as conn:
        if loan_id and borrower_view.owns_loan(conn, cid, loan_id):
            return loan_id
    raise NotFound(f"loan {text} does not exist", code="loan.not_found", field="loan")


problems.not_found_pages("/app", not_found_page)
