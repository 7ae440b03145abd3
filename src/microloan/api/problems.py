"""Every error as ``application/problem+json`` (RFC 9457) with a stable ``code`` and the ``field``
it concerns: the platform's own errors, request validation, rate limits and anything unexpected
(a 500 that names no internals)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from microloan.errors import (
    IdempotencyConflict,
    InvalidInput,
    MicroloanError,
    NotFound,
    RuleViolation,
)

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("microloan.api")


class Problem(BaseModel):
    """The body of every error response."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    field: str | None = None


class ApiError(MicroloanError):
    """An error of the HTTP layer itself, with its status (401, 403, 429 …)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code, field=field)
        self.status = status
        self.headers = headers or {}


# codes of the service layer's errors whose status is not their class's
_STATUS_BY_CODE = {
    "operator.unauthorised": 401,
    "operator.forbidden": 403,
}

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": text}
    for status, text in (
        (400, "bad request"),
        (401, "not authenticated"),
        (403, "not allowed"),
        (404, "not found"),
        (409, "refused by a rule, or a key reused"),
        (422, "invalid input"),
        (429, "too many requests"),
    )
}


def status_of(exc: MicroloanError) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    if exc.code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[exc.code]
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidInput):
        return 422
    if isinstance(exc, RuleViolation | IdempotencyConflict):
        return 409
    return 400


def problem(
    status: int,
    code: str,
    detail: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=f"https://microloan.dev/problems/{code}",
        title=code,
        status=status,
        code=code,
        detail=detail,
        field=field,
    )
    return JSONResponse(
        body.model_dump(), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _field_of(loc: Sequence[Any]) -> str:
    parts = [str(x) for x in loc if x not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or ".".join(str(x) for x in loc)


def install(app: FastAPI) -> None:
    @app.exception_handler(MicroloanError)
    async def _platform_error(request: Request, exc: MicroloanError) -> JSONResponse:
        headers = exc.headers if isinstance(exc, ApiError) else None
        return problem(status_of(exc), exc.code, exc.message, exc.field, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = _field_of(first.get("loc", ()))
        return problem(422, "input.invalid", f"{field}: {first.get('msg', 'invalid')}", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method.not_allowed"}.get(exc.status_code, "http.error")
        return problem(exc.status_code, code, str(exc.detail), None, exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "server.error", "服务暂不可用 the service could not answer", None)
