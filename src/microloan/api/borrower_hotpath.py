"""The borrower API without the framework's generic request handling, at the same answers.

A borrower request's own work (its reads, a draw's few statements) now costs less than what
FastAPI does around it for any route: finding the route among every router's, building the
request, solving the dependencies one by one, wrapping the endpoint. ``BorrowerHotPath`` is
ASGI middleware before the routing, built from the borrower router's routes. For a request to
one of them that is plainly valid — signed right and in time, every parameter and the body
valid by the route's own fields — it runs the same endpoint function, in the same single trip
to a worker thread that settles the gateway's check first (``gateway.Signed.settle``), and
answers with the route's own response validation and serialisation (FastAPI's fields of the
route) and the application's own error handlers.

Anything it does not take whole goes on to the application unchanged, before any effect (the
nonce is recorded only in the worker-thread trip, after every check has passed): an unsigned,
badly signed or late request, a body or parameter the route's fields refuse, text holding
U+0000, a query string, a body that is not JSON by its type, a root path. The application then
answers it exactly as it always does, error and all. The answers are the routes' own, byte for
byte (``tests/integration/test_borrower_hot_path.py``); ``app.state.hot_path_served``
counts the requests answered here (``borrower``).
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Response
from fastapi.routing import APIRoute
from starlette.convertors import StringConvertor
from starlette.requests import Request
from starlette.routing import compile_path

from microloan.api import gateway
from microloan.api.deps import get_platform
from microloan.api.hotpath import ASGIApp, Receive, Scope, Send
from microloan.api.problems import NUL, ApiError
from microloan.api.ratelimit import RateLimiter
from microloan.service.platform import Platform

MAX_BODY = 64 * 1024  # a larger body goes on to the application
_JSON_TYPE = re.compile(r"\s*application/json\s*(;.*)?", re.IGNORECASE | re.DOTALL)
_GATEWAY_HEADERS = {name.lower().encode("latin-1"): name for name in gateway.HEADERS}


@dataclass(frozen=True)
class _Endpoint:
    """What a borrower route needs to be run here: the endpoint as written, which of its
    parameters take the caller, the platform and the response, and FastAPI's fields of its
    path, header and body parameters and of its answer."""

    route: APIRoute
    regex: re.Pattern[str]
    call: Callable[..., Any]
    callers: tuple[str, ...]
    platforms: tuple[str, ...]
    responses: tuple[str, ...]
    paths: tuple[Any, ...]
    headers: tuple[tuple[Any, bytes], ...]  # (field, lower-case header name)
    body: Any  # the body's field, or None


class BorrowerHotPath:
    """``app.add_middleware(BorrowerHotPath, routes=..., prefix="/v1")``: the borrower
    router's routes (those it can take whole) answered here."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[Any], prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self.endpoints: dict[str, list[_Endpoint]] = {}
        for route in routes:
            made = _endpoint(route, prefix)
            if made is not None:
                for method in route.methods:
                    self.endpoints.setdefault(method, []).append(made)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("root_path") or scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        found = None
        if path.startswith(self.prefix):
            for endpoint in self.endpoints.get(scope["method"], ()):
                match = endpoint.regex.match(path)
                if match is not None:
                    found = endpoint, match.groupdict()
                    break
        if found is None:
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        if more is None and await _served(found[0], found[1], scope, body, send):
            counts = scope["app"].state.hot_path_served
            counts["borrower"] = counts.get("borrower", 0) + 1
            return
        await self.app(scope, _replaying(body, more, receive), send)


def _endpoint(route: Any, prefix: str) -> _Endpoint | None:
    """The route as run here, or None when it has anything this path does not handle."""
    if not isinstance(route, gateway.GatewayRoute) or route.original_call is None:
        return None
    dependant = route.dependant
    if dependant.query_params or dependant.cookie_params or route.dependencies:
        return None
    callers, platforms, responses = [], [], []
    for dep in dependant.dependencies:
        if dep.call is gateway.borrower and dep.name:
            callers.append(dep.name)
        elif dep.call is get_platform and dep.name:
            platforms.append(dep.name)
        else:
            return None  # a dependency of another kind: the application solves it
    if dependant.response_param_name:
        responses.append(dependant.response_param_name)
    other = (
        dependant.request_param_name,
        dependant.websocket_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    if any(other) or len(dependant.body_params) > 1 or not callers:
        return None
    regex, _format, convertors = compile_path(prefix + route.path)
    if not all(isinstance(c, StringConvertor) for c in convertors.values()):
        return None
    headers = tuple((f, str(f.alias).lower().encode("latin-1")) for f in dependant.header_params)
    return _Endpoint(
        route=route,
        regex=regex,
        call=route.original_call,
        callers=tuple(callers),
        platforms=tuple(platforms),
        responses=tuple(responses),
        paths=tuple(dependant.path_params),
        headers=headers,
        body=route.body_field,
    )


async def _read_body(receive: Receive) -> tuple[bytes, Any]:
    """The request's body and None; or, for a body larger than this path takes or a client
    gone, what was read so far and ``True`` (more to come) or the disconnect message."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None
        if size > MAX_BODY:
            return b"".join(chunks), True


def _replaying(body: bytes, after: Any, receive: Receive) -> Receive:
    """``receive`` for the application: the body read here, then what is still to come."""
    pending: list[Any] = [{"type": "http.request", "body": body, "more_body": after is True}]
    if isinstance(after, dict):
        pending.append(after)  # the client left: the application hears it after the body

    async def replay() -> Any:
        return pending.pop(0) if pending else await receive()

    return replay


def _signature_headers(scope: Scope) -> dict[str, str] | None:
    """The gateway's headers as the routes take them (``gateway.gateway_headers``, the first
    of each name), or None for a request they would refuse (the application then refuses it)."""
    values: dict[str, str] = {}
    for name, value in scope["headers"]:
        header = _GATEWAY_HEADERS.get(name)
        if header is not None and header not in values:
            values[header] = value.decode("latin-1")
    try:
        return gateway.gateway_headers(values.get)
    except ApiError:
        return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _served(
    endpoint: _Endpoint, path_values: dict[str, str], scope: Scope, body: bytes, send: Send
) -> bool:
    """Answer the request here; False, having done nothing, when the application should."""
    app = scope["app"]
    if app.dependency_overrides:  # the application solves the dependencies as overridden
        return False
    p: Platform = app.state.platform
    limiter: RateLimiter = app.state.limiter
    signed = _signed(p, limiter, scope, body)
    if signed is None:
        return False
    kwargs = _arguments(endpoint, path_values, scope, body)
    if kwargs is None:
        return False
    for name in endpoint.callers:
        kwargs[name] = signed
    for name in endpoint.platforms:
        kwargs[name] = p
    sub_response = None
    if endpoint.responses:
        sub_response = Response()
        del sub_response.headers["content-length"]
        sub_response.status_code = None  # type: ignore[assignment]
        for name in endpoint.responses:
            kwargs[name] = sub_response
    work = functools.partial(
        contextvars.copy_context().run,
        gateway.settle_then_call,
        p,
        endpoint.call,
        endpoint.callers,
        kwargs,
    )
    try:
        threads = gateway.endpoint_threads(p)
        result = await asyncio.get_running_loop().run_in_executor(threads, work)
        response = _response(endpoint, result, sub_response)
    except Exception as exc:
        response = await _handled(app, scope, exc)
    await response(scope, _no_receive, send)
    return True


def _signed(p: Platform, limiter: RateLimiter, scope: Scope, body: bytes) -> Any:
    """The request signed and in time (``gateway.check_signed``), else None."""
    h = _signature_headers(scope)
    if h is None or not gateway.secret_at_hand(p, h[gateway.H_CHANNEL]):
        return None
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else scope["path"]
    try:
        return gateway.check_signed(p, limiter, h, scope["method"], path, body)
    except ApiError:
        return None


def _arguments(
    endpoint: _Endpoint, path_values: dict[str, str], scope: Scope, body: bytes
) -> dict[str, Any] | None:
    """The endpoint's path, header and body arguments validated by the route's own fields,
    or None when any is refused (or holds U+0000, or the body is not JSON by its type)."""
    kwargs: dict[str, Any] = {}
    for field in endpoint.paths:
        text = path_values.get(field.alias)
        if text is None or NUL in text:
            return None
        value, errors = field.validate(text, {}, loc=("path", field.alias))
        if errors:
            return None
        kwargs[field.name] = value
    for field, name in endpoint.headers:
        text = _header(scope, name)
        if text is None:
            if field.field_info.is_required():
                return None
            kwargs[field.name] = copy.deepcopy(field.default)
            continue
        value, errors = field.validate(text, {}, loc=("header", field.alias))
        if errors:
            return None
        kwargs[field.name] = value
    if endpoint.body is not None:
        parsed = _json_body(scope, body, endpoint.body)
        if parsed is _REFUSED:
            return None
        kwargs[endpoint.body.name] = parsed
    elif body:
        return None
    return kwargs


_REFUSED = object()


def _json_body(scope: Scope, body: bytes, field: Any) -> Any:
    """The body validated by its field (None when empty and optional), else ``_REFUSED``."""
    if not body:
        if field.field_info.is_required():
            return _REFUSED
        return copy.deepcopy(field.default)
    kind = _header(scope, b"content-type")
    if kind is None or not _JSON_TYPE.fullmatch(kind) or b"\\u0000" in body:
        return _REFUSED
    try:
        document = json.loads(body)
    except ValueError:
        return _REFUSED
    value, errors = field.validate(document, {}, loc=("body",))
    return _REFUSED if errors else value


def _response(endpoint: _Endpoint, result: Any, sub_response: Response | None) -> Response:
    """The answer as FastAPI makes it: the route's response field validates and serialises
    the result, the status is the route's unless the endpoint set one."""
    route = endpoint.route
    if isinstance(result, Response):
        return result
    status = route.status_code or 200
    if sub_response is not None and sub_response.status_code:
        status = sub_response.status_code
    field = route.response_field
    if field is None:
        return Response(json.dumps(result), status_code=status, media_type="application/json")
    value, errors = field.validate(result, {}, loc=("response",))
    if errors:
        from fastapi.exceptions import ResponseValidationError

        raise ResponseValidationError(errors=errors, body=result)
    content = field.serialize_json(
        value,
        include=route.response_model_include,
        exclude=route.response_model_exclude,
        by_alias=route.response_model_by_alias,
        exclude_unset=route.response_model_exclude_unset,
        exclude_defaults=route.response_model_exclude_defaults,
        exclude_none=route.response_model_exclude_none,
    )
    response = Response(content=content, media_type="application/json", status_code=status)
    if sub_response is not None:
        response.headers.raw.extend(sub_response.headers.raw)
    return response


async def _handled(app: Any, scope: Scope, exc: Exception) -> Response:
    """The application's own answer to an error raised by the endpoint (its handler for the
    error's class); anything without one goes up to the server-error middleware, as from a
    route."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            break
        handler = handlers.get(cls)
        if handler is not None:
            answer = handler(Request(scope), exc)
            if asyncio.iscoroutine(answer):
                answer = await answer
            return answer  # type: ignore[no-any-return]
    raise exc


async def _no_receive() -> Any:
    raise RuntimeError("the request was read in full")
