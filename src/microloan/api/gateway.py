"""The channel gateway: every borrower request comes through the borrower's channel (WeChat, QQ
…), which signs it with the channel's secret. The platform checks the signature, the time and
the nonce (a replayed request is refused), then counts the request against the borrower's rate
limit and finds the customer behind the channel user. All of it happens before the body is
parsed (``GatewayRoute``): an unsigned request is refused 401 whatever its body.

The string signed, one part a line::

    METHOD
    /path?raw-query
    unix seconds (X-Timestamp)
    nonce (X-Nonce)
    channel (X-Channel)
    open id (X-Open-Id)
    hex SHA-256 of the raw body

and ``X-Signature`` is its HMAC-SHA256 with the channel's secret, in lower-case hex.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import functools
import hashlib
import hmac
import inspect
import itertools
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import sqlalchemy as sa
from fastapi import Depends, Request, Response
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from microloan.api.deps import get_limiter, get_platform, limiter_of, platform_of
from microloan.api.problems import ApiError, InputRoute
from microloan.api.ratelimit import RateLimiter
from microloan.service.platform import Platform
from microloan.store.prepared import Prepared
from microloan.store.schema import channel, channel_identity, gateway_nonce

H_CHANNEL = "X-Channel"
H_OPEN_ID = "X-Open-Id"
H_TIMESTAMP = "X-Timestamp"
H_NONCE = "X-Nonce"
H_SIGNATURE = "X-Signature"
HEADERS = (H_CHANNEL, H_OPEN_ID, H_TIMESTAMP, H_NONCE, H_SIGNATURE)

SECRET_BYTES = 32
MIN_SECRET_BYTES = 32
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
OPEN_ID_MAX = 64
CHANNEL_MAX = 16
SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
PRUNE_EVERY = 256  # requests between two deletions of expired nonces (per process)
_SCOPE_KEY = "microloan.borrower"  # where GatewayRoute leaves the verified caller

_prune_tick = itertools.count(1)
_file_lock = threading.Lock()
# secrets files read, by path: (modification time in ns, {channel: secret})
_file_cache: dict[str, tuple[int, dict[str, bytes]]] = {}


@dataclass(frozen=True)
class Borrower:
    """The caller of a borrower endpoint: a channel user, and its customer once verified."""

    channel: str
    open_id: str
    customer_id: int | None


# ---------------------------------------------------------------------------------------------
# Signing (the gateway's side; also the tests', the demo login's and the load benchmark's)


def string_to_sign(
    method: str, path: str, timestamp: str, nonce: str, channel_code: str, open_id: str, body: bytes
) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    parts = [method.upper(), path, timestamp, nonce, channel_code, open_id, digest]
    return "\n".join(parts).encode()


def sign(
    secret: bytes,
    method: str,
    path: str,
    timestamp: str,
    nonce: str,
    channel_code: str,
    open_id: str,
    body: bytes,
) -> str:
    """The request's signature: lower-case hex HMAC-SHA256 of the string to sign."""
    message = string_to_sign(method, path, timestamp, nonce, channel_code, open_id, body)
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_headers(
    secret: bytes,
    method: str,
    path: str,
    channel_code: str,
    open_id: str,
    body: bytes = b"",
    *,
    now: datetime | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The gateway headers of one request (a fresh random nonce unless one is given)."""
    timestamp = str(int(now.timestamp()) if now is not None else int(time.time()))
    nonce = nonce if nonce is not None else secrets.token_urlsafe(18)
    return {
        H_CHANNEL: channel_code,
        H_OPEN_ID: open_id,
        H_TIMESTAMP: timestamp,
        H_NONCE: nonce,
        H_SIGNATURE: sign(secret, method, path, timestamp, nonce, channel_code, open_id, body),
    }


# ---------------------------------------------------------------------------------------------
# Channel secrets


def _unknown_channel(code: str) -> ApiError:
    return ApiError(
        401, f"unknown channel {code!r}", code="gateway.unknown_channel", field=H_CHANNEL
    )


def _decode_secret(text: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            500, f"{where}: a channel secret is not base64", code="config.gateway_secrets"
        ) from None
    if len(raw) < MIN_SECRET_BYTES:
        raise ApiError(
            500,
            f"{where}: a channel secret must be at least {MIN_SECRET_BYTES} bytes",
            code="config.gateway_secrets",
        )
    return raw


def channel_secret(p: Platform, channel_code: str) -> bytes:
    """The channel's signing secret: configured (base64), else from the secrets file, which the
    embedded SQLite default creates (and extends with new channels) on first use."""
    configured = p.settings.gateway_secrets
    if configured:
        if channel_code not in configured:
            raise _unknown_channel(channel_code)
        return _decode_secret(configured[channel_code], "gateway_secrets")
    path = Path(p.settings.gateway_secrets_file)
    known = _read_secrets_file(path)
    if channel_code in known:
        return known[channel_code]
    if p.engine.dialect.name != "sqlite":
        raise _unknown_channel(channel_code)
    with p.engine.connect() as conn:
        exists = conn.execute(
            sa.select(channel.c.code).where(channel.c.code == channel_code)
        ).first()
    if exists is None:
        raise _unknown_channel(channel_code)
    return _add_secrets(p, path)[channel_code]


def _read_secrets_file(path: Path) -> dict[str, bytes]:
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return {}
    cached = _file_cache.get(str(path))
    if cached is not None and cached[0] == mtime:
        return cached[1]
    try:
        data = json.loads(path.read_text())
    except ValueError:
        raise ApiError(
            500, f"{path}: not a JSON object of channel secrets", code="config.gateway_secrets"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(500, f"{path}: not a JSON object", code="config.gateway_secrets")
    out = {str(k): _decode_secret(str(v), str(path)) for k, v in data.items()}
    _file_cache[str(path)] = (mtime, out)
    return out


def _add_secrets(p: Platform, path: Path) -> dict[str, bytes]:
    """Give every channel of the database a fresh secret it lacks; keeps the existing ones."""
    with p.engine.connect() as conn:
        codes = [str(c) for c in conn.execute(sa.select(channel.c.code)).scalars()]
    with _file_lock:
        current = {k: base64.b64encode(v).decode() for k, v in _read_secrets_file(path).items()}
        for code in codes:
            current.setdefault(code, base64.b64encode(os.urandom(SECRET_BYTES)).decode())
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(current, indent=2, sort_keys=True) + "\n")
        os.replace(temp, path)  # readers see the old file or the new one, never half of one
        _file_cache.pop(str(path), None)
        return _read_secrets_file(path)


# ---------------------------------------------------------------------------------------------
# Verification


def _headers_of(request: Request) -> dict[str, str]:
    return gateway_headers(request.headers.get)


def gateway_headers(get: Callable[[str], str | None]) -> dict[str, str]:
    """The gateway's headers, by name (``get`` looks one up), or a 401 naming the one that is
    missing or malformed."""
    values = {}
    for name in HEADERS:
        value = get(name)
        if not value:
            raise ApiError(
                401, f"the gateway header {name} is missing", code="gateway.unsigned", field=name
            )
        values[name] = value
    if len(values[H_CHANNEL]) > CHANNEL_MAX or len(values[H_OPEN_ID]) > OPEN_ID_MAX:
        raise ApiError(401, "channel or open id too long", code="gateway.unsigned", field=H_OPEN_ID)
    if not NONCE_RE.fullmatch(values[H_NONCE]):
        raise ApiError(
            401, "a nonce is 8–64 of A-Z a-z 0-9 _ -", code="gateway.unsigned", field=H_NONCE
        )
    return values


def _signed_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    query = request.scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def _check_time(p: Platform, timestamp: str) -> None:
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise ApiError(
            401, "X-Timestamp is unix seconds", code="gateway.unsigned", field=H_TIMESTAMP
        )
    skew_s = abs(int(timestamp) - p.now().timestamp())
    window_s = p.settings.gateway_window_s
    if skew_s > window_s:
        raise ApiError(
            401,
            f"the request's time is more than {window_s} s away from the platform's",
            code="gateway.expired",
            field=H_TIMESTAMP,
        )


def _check_signature(p: Platform, h: dict[str, str], method: str, path: str, body: bytes) -> None:
    secret = channel_secret(p, h[H_CHANNEL])
    expected = sign(
        secret, method, path, h[H_TIMESTAMP], h[H_NONCE], h[H_CHANNEL], h[H_OPEN_ID], body
    )
    given = h[H_SIGNATURE]
    if not (SIGNATURE_RE.fullmatch(given) and hmac.compare_digest(expected, given)):
        raise ApiError(
            401, "the signature does not match", code="gateway.bad_signature", field=H_SIGNATURE
        )


def _record_nonce(p: Platform, channel_code: str, nonce: str, open_id: str) -> int | None:
    """Each nonce once per channel (a replay is refused), and the customer behind the channel
    user (None before their identity is verified), read in the same round trip. A request may
    be stamped up to a window ahead of the platform's clock and is accepted until a window
    after its stamp, so a nonce is kept for two windows."""
    now = p.now()
    params = {"channel": channel_code, "nonce": nonce, "seen_at": now, "open_id": open_id}
    if p.is_postgres:
        fresh, customer = _nonce_and_customer_pg(p, params)
    else:

        def work(conn: sa.Connection) -> tuple[bool, int | None]:
            kept = conn.execute(_NONCE_SQLITE, params).first() is not None
            return kept, conn.execute(_CUSTOMER, params).scalar_one_or_none()

        fresh, customer = p.transaction(work)
    if next(_prune_tick) % PRUNE_EVERY == 0:
        before = now - timedelta(seconds=2 * p.settings.gateway_window_s)
        stale = gateway_nonce.delete().where(gateway_nonce.c.seen_at < before)
        p.transaction(lambda conn: conn.execute(stale))
    if not fresh:
        raise ApiError(
            401, "this request was already received", code="gateway.replayed", field=H_NONCE
        )
    return None if customer is None else int(customer)


def _nonce_and_customer_pg(p: Platform, params: dict[str, Any]) -> tuple[bool, int | None]:
    """One statement that commits on its own, on a reading connection (no BEGIN and COMMIT
    round trips, psycopg keeps it prepared, and the commit does not wait for the log's flush:
    docs/api.md); a stale pooled connection is dropped and the statement tried once more."""
    for attempt in (1, 2):
        try:
            with p.reading() as conn:
                fresh, customer = _NONCE_AND_CUSTOMER.one(conn, params)
            return bool(fresh), customer
        except OperationalError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


# built once, with bind parameters: a nonce row, and the customer of a channel user
_NONCE_ROW: dict[str, sa.BindParameter[Any]] = {
    "channel": sa.bindparam("channel"),
    "nonce": sa.bindparam("nonce"),
    "seen_at": sa.bindparam("seen_at"),
}
_CUSTOMER = sa.select(channel_identity.c.customer_id).where(
    channel_identity.c.channel == sa.bindparam("channel"),
    channel_identity.c.open_id == sa.bindparam("open_id"),
)
_NONCE_SQLITE = (
    sqlite.insert(gateway_nonce)
    .values(_NONCE_ROW)
    .on_conflict_do_nothing(index_elements=["channel", "nonce"])
    .returning(gateway_nonce.c.nonce)
)
_FRESH_PG = (
    postgresql.insert(gateway_nonce)
    .values(_NONCE_ROW)
    .on_conflict_do_nothing(index_elements=["channel", "nonce"])
    .returning(gateway_nonce.c.nonce)
    .cte("fresh")
)
_NONCE_AND_CUSTOMER = Prepared(
    sa.select(
        sa.exists(sa.select(_FRESH_PG.c.nonce)).label("fresh"),
        _CUSTOMER.scalar_subquery().label("customer_id"),
    )
)


def check_signed(
    p: Platform, limiter: RateLimiter, h: dict[str, str], method: str, path: str, body: bytes
) -> Signed:
    """The request's time and signature (CPU only, once its channel's secret is at hand)."""
    _check_time(p, h[H_TIMESTAMP])
    _check_signature(p, h, method, path, body)
    return Signed(h[H_CHANNEL], h[H_OPEN_ID], None, p, limiter, h[H_NONCE])


@dataclass(frozen=True)
class Signed(Borrower):
    """A request whose time and signature are good but whose nonce is not yet recorded: not
    yet a caller. ``settle()`` (blocking) records the nonce (a replay is refused), counts the
    request against the borrower's rate limit and finds the customer."""

    p: Platform = field(repr=False)
    limiter: RateLimiter = field(repr=False)
    nonce: str = field(repr=False)

    def settle(self) -> Borrower:
        customer = _record_nonce(self.p, self.channel, self.nonce, self.open_id)
        limit = self.p.settings.rate_limit_borrower
        self.limiter.hit("borrower", f"{self.channel}:{self.open_id}", limit)
        return Borrower(self.channel, self.open_id, customer)


def secret_at_hand(p: Platform, channel_code: str) -> bool:
    """Whether the channel's secret can be had without the database or reading a file anew
    (configured, or in the secrets file as last read), so the signature may be checked on the
    event loop."""
    if p.settings.gateway_secrets:
        return True
    cached = _file_cache.get(str(Path(p.settings.gateway_secrets_file)))
    return cached is not None and channel_code in cached[1]


async def _checked(request: Request, p: Platform, limiter: RateLimiter) -> Signed:
    h = _headers_of(request)
    body = await request.body()  # Starlette keeps it for the endpoint's own parsing
    path = _signed_path(request)
    if secret_at_hand(p, h[H_CHANNEL]):
        return check_signed(p, limiter, h, request.method, path, body)
    return await run_in_threadpool(check_signed, p, limiter, h, request.method, path, body)


_threads_lock = threading.Lock()
_threads: list[ThreadPoolExecutor] = []


def endpoint_threads(p: Platform) -> ThreadPoolExecutor:
    """The process's threads that run a borrower endpoint together with the end of its gateway
    check: ``server_threads`` of them (each request holds a reading and at times a writing
    connection, so the server's pools hold enough for all), made on first use."""
    if not _threads:
        with _threads_lock:
            if not _threads:
                size = p.settings.server_threads
                _threads.append(ThreadPoolExecutor(size, thread_name_prefix="borrower"))
    return _threads[0]


def _caller_params(endpoint: Callable[..., Any]) -> list[str]:
    hints = get_type_hints(endpoint, include_extras=True)
    return [
        name
        for name, hint in hints.items()
        if name != "return" and get_origin(hint) is Annotated and get_args(hint)[0] is Borrower
    ]


def _settling(endpoint: Callable[..., Any], callers: list[str]) -> Callable[..., Any]:
    """The endpoint as a coroutine that runs, in one trip to a worker thread, the rest of the
    gateway's check (``Signed.settle``) and then the endpoint with the settled caller."""

    @functools.wraps(endpoint)
    async def call(**kwargs: Any) -> Any:
        found = next(v for v in kwargs.values() if isinstance(v, Signed | Platform))
        p = found.p if isinstance(found, Signed) else found
        work = functools.partial(
            contextvars.copy_context().run, settle_then_call, p, endpoint, callers, kwargs
        )
        return await asyncio.get_running_loop().run_in_executor(endpoint_threads(p), work)

    return call


def settle_then_call(
    p: Platform, endpoint: Callable[..., Any], callers: Sequence[str], kwargs: dict[str, Any]
) -> Any:
    """In the worker thread: the rest of the gateway's check for each caller still ``Signed``
    (``Signed.settle``), then the endpoint with the settled callers; the nonce and the
    endpoint's reads on one reading connection (``Platform.holding_reads``)."""
    with p.holding_reads():
        for name in callers:
            given = kwargs[name]
            if isinstance(given, Signed):
                kwargs[name] = given.settle()
        return endpoint(**kwargs)


class GatewayRoute(InputRoute):
    """The route class of the borrower router: the gateway's checks run before the body is
    looked at (FastAPI parses and validates it before any dependency runs), so a request that
    is not signed is refused 401 whatever its body, and only a signed one learns that its body
    is invalid (422).

    The time and the signature are checked on the event loop. The nonce, the rate limit and the
    customer (a database round trip) are settled in the same worker-thread trip as the endpoint
    itself (one trip a request rather than two), before the endpoint runs; so a replayed or
    rate-limited request whose body is invalid is answered 422 rather than 401 or 429. A route
    whose endpoint takes no caller, or is a coroutine, settles before the endpoint instead."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        callers = [] if inspect.iscoroutinefunction(endpoint) else _caller_params(endpoint)
        self.settles_in_endpoint = bool(callers)
        # the endpoint as written, for BorrowerHotPath (which settles before calling it)
        self.original_call: Callable[..., Any] | None = endpoint if callers else None
        if callers:
            endpoint = _settling(endpoint, callers)
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        in_endpoint = self.settles_in_endpoint

        async def signed_first(request: Request) -> Response:
            signed = await _checked(request, platform_of(request), limiter_of(request))
            caller = signed if in_endpoint else await run_in_threadpool(signed.settle)
            request.scope[_SCOPE_KEY] = caller
            return await handler(request)

        return signed_first


async def borrower(
    request: Request,
    p: Annotated[Platform, Depends(get_platform)],
    limiter: Annotated[RateLimiter, Depends(get_limiter)],
) -> Borrower:
    """The FastAPI dependency of every borrower endpoint: the caller that ``GatewayRoute``
    checked (settled by the endpoint's wrapper when still ``Signed``), or, on a route of another
    class, verified here."""
    checked = request.scope.get(_SCOPE_KEY)
    if isinstance(checked, Borrower):
        return checked
    signed = await _checked(request, p, limiter)
    return await run_in_threadpool(signed.settle)
