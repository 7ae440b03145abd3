"""The console's session, CSRF tokens, pages and error pages.

The session is the operator API's own (``operator_access``), its token kept in an HttpOnly,
SameSite=Strict cookie scoped to ``/console`` (Secure on https). A request without a live session
is sent to the login page (303). Every form that changes something carries a CSRF token: an
HMAC keyed by the session's token (by a random cookie on the login form), so it needs no stored
state and no server secret, and another site, which cannot read the cookie, cannot make one.

Pages are rendered with ``pages.render`` and the console's own strings. An error of the
platform (a ``MicroloanError``: a refused role, a rule, a missing case, bad input) is shown as a
page with ``role="alert"`` and the status the API would answer, never as a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from microloan.api import operator as api
from microloan.api.console_text import TEXT
from microloan.api.deps import get_limiter, get_platform
from microloan.api.pages import render
from microloan.api.problems import (
    ApiError,
    invalid_input,
    nul_form_field,
    nul_refused,
    status_of,
)
from microloan.api.ratelimit import RateLimiter
from microloan.errors import MicroloanError, NotFound
from microloan.service.operators import Operator
from microloan.service.platform import Platform

PREFIX = "/console"
SESSION_COOKIE = "console_session"
LOGIN_COOKIE = "console_login"
CSRF_FIELD = "csrf"
MAX_CSRF_CHARS = 128
_CSRF_CONTEXT = b"microloan.console.csrf/1"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
}

PlatformDep = Annotated[Platform, Depends(get_platform)]
LimiterDep = Annotated[RateLimiter, Depends(get_limiter)]

# the pages of the menu, and who may open each: the operator API's own role lists
NAV: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("/console/customers", "nav_customers", api.CUSTOMER_READERS),
    ("/console/reviews", "nav_reviews", api.REVIEW_READERS),
    ("/console/proposals", "nav_proposals", api.PROPOSAL_READERS),
    ("/console/write-offs", "nav_write_offs", api.WRITE_OFF_READERS),
    ("/console/eod", "nav_eod", api.REPORT_READERS),
    ("/console/portfolio", "nav_portfolio", api.REPORT_READERS),
    ("/console/audit", "nav_audit", api.AUDIT_READERS),
    ("/console/operators", "nav_operators", (*api.ADMINISTRATORS, "auditor")),
)


def csrf_token(secret: str) -> str:
    """The form token of a session (``secret``: its token) or of the login form (its cookie)."""
    return hmac.new(secret.encode("utf-8"), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def _csrf_matches(secret: str | None, given: str) -> bool:
    return bool(secret) and hmac.compare_digest(csrf_token(secret or ""), given)


def csrf_refused() -> ApiError:
    return ApiError(
        403,
        "the form's security token is missing or stale: reload the page and try again",
        code="console.csrf",
        field=CSRF_FIELD,
    )


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    operator: Operator
    expires_at: datetime
    token: str

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)

    @property
    def api_session(self) -> tuple[Operator, datetime, str]:
        return self.operator, self.expires_at, self.token


class LoginRequired(Exception):
    """No live session: the route sends the browser to the login page."""


def current_session(request: Request, p: PlatformDep, limiter: LimiterDep) -> ConsoleSession:
    """The session of the cookie, counted against the operator's rate limit like the API's."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired
    try:
        op, expires_at, token = api.session_of_token(p, limiter, token)
    except ApiError as exc:
        if exc.status == 401:
            raise LoginRequired from None
        raise
    session = ConsoleSession(op, expires_at, token)
    request.state.console_session = session
    return session


SessionDep = Annotated[ConsoleSession, Depends(current_session)]


def checked_session(
    session: SessionDep, csrf: Annotated[str, Form(max_length=MAX_CSRF_CHARS)] = ""
) -> ConsoleSession:
    """The session of a form that changes something, with its CSRF token checked (403)."""
    if not _csrf_matches(session.token, csrf):
        raise csrf_refused()
    return session


FormSessionDep = Annotated[ConsoleSession, Depends(checked_session)]


def login_secret(request: Request) -> str | None:
    return request.cookies.get(LOGIN_COOKIE)


def check_login_csrf(request: Request, given: str) -> None:
    if not _csrf_matches(login_secret(request), given):
        raise csrf_refused()


def new_login_secret() -> str:
    return secrets.token_urlsafe(32)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path=PREFIX, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


# -- rendering -----------------------------------------------------------------------------------


def cny(amount: str | None) -> str:
    """``"1234.50"`` (a service's yuan text) → ``"¥1,234.50"``; None → ``"—"``."""
    if amount is None:
        return "—"
    sign, digits = ("-", amount[1:]) if amount.startswith("-") else ("", amount)
    whole, _, part = digits.partition(".")
    return f"{sign}¥{int(whole):,}.{(part + '00')[:2]}"


def day(stamp: str | None) -> str:
    """An ISO date or timestamp as ``YYYY-MM-DD`` (timestamps: ``YYYY-MM-DD HH:MM`` UTC)."""
    if not stamp:
        return "—"
    return stamp[:10] if len(stamp) <= 10 else f"{stamp[:10]} {stamp[11:16]}"


def nav_for(op: Operator) -> list[tuple[str, str]]:
    return [(href, key) for href, key, roles in NAV if op.roles.intersection(roles)]


def page(
    request: Request,
    name: str,
    session: ConsoleSession | None,
    *,
    status_code: int = 200,
    **ctx: Any,
) -> HTMLResponse:
    """A console page: the shared layout, the console's strings, its menu and helpers; never
    cached (it shows customers' data), never framed (its forms must not be clicked blind)."""
    response = render(
        request,
        f"console/{name}",
        text=TEXT,
        status_code=status_code,
        me=None if session is None else session.operator,
        nav=[] if session is None else nav_for(session.operator),
        csrf="" if session is None else session.csrf,
        here=request.url.path,
        cny=cny,
        day=day,
        **ctx,
    )
    response.headers.update(PAGE_HEADERS)
    return response


def error_page(request: Request, exc: MicroloanError) -> HTMLResponse:
    session = getattr(request.state, "console_session", None)
    status = status_of(exc)
    response = page(request, "error.html", session, status_code=status, error=exc, status=status)
    if isinstance(exc, ApiError):
        response.headers.update(exc.headers)
    return response


def not_found_page(request: Request) -> HTMLResponse:
    """A path under the console that no page has (the router's own 404): a page in the
    console's layout, linking to the console's home, rather than the API's problem+json. The
    session is not read: the home page sends whoever has none to the login."""
    exc = NotFound("没有这个页面 there is no such page", code="console.not_found")
    return page(request, "error.html", None, status_code=404, error=exc, status=404, home=True)


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.method == "GET" and request.url.query:
        target += "?" + request.url.query
    response = RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='/')}", status_code=303)
    if request.cookies.get(SESSION_COOKIE):
        clear_cookie(request, response, SESSION_COOKIE)  # expired or ended
    return response


def safe_next(target: str) -> str:
    """Where to go after login: a console path only, never another site."""
    ok = target.startswith(PREFIX) and not target.startswith(f"{PREFIX}/login")
    return target if ok and "\\" not in target and "//" not in target else PREFIX


class ConsoleRoute(APIRoute):
    """Answers a console route's errors with pages: the login page for no session, and an
    error page with the API's status for the platform's errors and invalid input (text holding
    U+0000 included, refused before the endpoint runs)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                field = await nul_form_field(request)
                if field is not None:
                    raise nul_refused(field)
                return await handler(request)
            except LoginRequired:
                return login_redirect(request)
            except MicroloanError as exc:
                return error_page(request, exc)
            except (RequestValidationError, ValidationError) as exc:
                return error_page(request, invalid_input(exc.errors()))

        return handle
