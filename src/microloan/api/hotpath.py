"""The public invitation check and the referral landing at viral load: a shared code's page is
opened by many people at once, and the lender's page must keep opening (a lender's referral
page was once flooded until it could not).

``PublicHotPath`` is ASGI middleware placed before the application's routing. For the two public
reads it answers, in microseconds and on the event loop, what needs neither the database nor a
template:

* ``GET /v1/public/invitations/{code}`` — the answer of ``invitations.cached_check``: a
  malformed or forged code (a pure function of the text and the key), or an issued code this
  process confirmed in the last few seconds;
* ``GET /r/{code}`` — a landing page the pages router rendered in the last few seconds for the
  same address, query, language and mode cookies and answer (``pages.kept_landing``).

Each is counted against the public limit of its client address first, exactly as the routes
count it. Everything else — a first sight of an issued code, a page not yet rendered, input the
routes would refuse, a client over its limit, a shared (Redis) rate-limit store — goes on to
the application unchanged, which answers it as always (and fills the caches). The answers are
byte for byte the routes' own: the tests compare them. ``app.state.hot_path_served`` counts the
requests answered here, by kind (``check``, ``landing``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import cookie_parser
from starlette.responses import JSONResponse

from microloan.api import pages
from microloan.api.problems import ApiError
from microloan.api.ratelimit import RateLimiter
from microloan.service import invitations
from microloan.service.invitations import MAX_CODE_INPUT_CHARS
from microloan.service.platform import Platform

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CHECK_PREFIX = "/v1/public/invitations/"
LANDING_PREFIX = "/r/"


class PublicHotPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(CHECK_PREFIX):
                served = await self._check(scope, send, path[len(CHECK_PREFIX) :])
            elif path.startswith(LANDING_PREFIX):
                served = await self._landing(scope, send, path[len(LANDING_PREFIX) :])
            else:
                served = None
            if served:
                counts = scope["app"].state.hot_path_served
                counts[served] = counts.get(served, 0) + 1
                return
        await self.app(scope, receive, send)

    async def _check(self, scope: Scope, send: Send, code: str) -> str | None:
        if not _plain_code(code) or len(code) > MAX_CODE_INPUT_CHARS:
            return None  # the route names the rule that refuses it
        app = scope["app"]
        p: Platform = app.state.platform
        answer = invitations.cached_check(p, code)
        if answer is None or not _counted(scope, app.state.limiter, p):
            return None
        response = JSONResponse(answer)  # as the route renders it: body, length, type
        await _respond(send, 200, response.raw_headers, bytes(response.body))
        return "check"

    async def _landing(self, scope: Scope, send: Send, code: str) -> str | None:
        if not _plain_code(code):
            return None
        app = scope["app"]
        p: Platform = app.state.platform
        answer = invitations.cached_check(p, code[:MAX_CODE_INPUT_CHARS])
        if answer is None:
            return None
        lang, mode = _lang_and_mode(scope)
        kept = pages.kept_landing(scope["path"], scope["query_string"], lang, mode, answer)
        if kept is None or not _counted(scope, app.state.limiter, p):
            return None
        status, headers, body = kept
        await _respond(send, status, list(headers), body)
        return "landing"


def _plain_code(code: str) -> bool:
    return bool(code) and "/" not in code and "\x00" not in code


def _counted(scope: Scope, limiter: RateLimiter, p: Platform) -> bool:
    """One request of the client address against the public limit, as ``deps.limit_public``
    counts it; False when it is over (the route then answers 429) or the count would block."""
    if limiter.blocking:
        return False
    client = scope.get("client")
    try:
        limiter.hit("public", client[0] if client else "unknown", p.settings.rate_limit_public)
    except ApiError:
        return False  # refused requests are not counted: the route's own count refuses it too
    return True


def _lang_and_mode(scope: Scope) -> tuple[str | None, str | None]:
    """The language and mode cookies, read as the application reads them (Starlette's parser,
    several ``Cookie`` headers merged in order)."""
    cookies: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name == b"cookie":
            cookies.update(cookie_parser(value.decode("latin-1")))
    return cookies.get("lang"), cookies.get("mode")


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
