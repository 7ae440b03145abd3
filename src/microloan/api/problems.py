"""Every error as ``application/problem+json`` (RFC 9457) with a stable ``code`` and the ``field``
it concerns: the platform's own errors, request validation, rate limits and anything unexpected
(a 500 that names no internals). A family of pages may answer the router's 404 under its prefix
with a page of its own (``not_found_pages``), and the refusal of text holding U+0000 is shared
by the API's routes and the pages' (``nul_refused``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
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
JSON = "application/json"
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


# Starlette's and FastAPI's own refusals: (code, field) by status
_HTTP_CODES = {
    400: ("input.unreadable", "body"),  # a body that is not UTF-8 text, or not a readable form
    404: ("not_found", None),
    405: ("method.not_allowed", None),
}

# Page families (the console) that answer a path no route has under their prefix with a page
# of their own rather than a problem: prefix → page. Each family's module registers itself.
_NOT_FOUND_PAGES: dict[str, Callable[[Request], Response]] = {}


def not_found_pages(prefix: str, answer: Callable[[Request], Response]) -> None:
    """Answer the router's 404 for paths under ``prefix`` (``/console``) with ``answer``."""
    assert prefix.startswith("/") and not prefix.endswith("/"), prefix
    _NOT_FOUND_PAGES[prefix] = answer


def _not_found_page(path: str) -> Callable[[Request], Response] | None:
    for prefix, answer in _NOT_FOUND_PAGES.items():
        if path == prefix or path.startswith(f"{prefix}/"):
            return answer
    return None


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


def _document_problems(app: FastAPI) -> None:
    """File the error bodies' schema under ``application/problem+json``, the type they are
    sent with: FastAPI files a response model under the route's own type (application/json)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = plain()  # kept by the app: this runs once
        for item in doc.get("paths", {}).values():
            for operation in item.values():
                for response in operation.get("responses", {}).values():
                    content = response.get("content", {})
                    if PROBLEM_JSON in content and JSON in content:
                        content[PROBLEM_JSON] = content.pop(JSON)
        return doc

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's way to extend the document


# ---------------------------------------------------------------------------------------------
# Text no database keeps

NUL = "\x00"
_JSON_NUL = b"\\u0000"  # JSON writes U+0000 only so; a raw one is not JSON
FIELD_NAME_CHARS = 40  # of a field's name echoed in a refusal


def invalid_input(errors: Any) -> InvalidInput:
    """The first of pydantic's or FastAPI's validation errors, as the platform's error (for
    the pages, which show it in their own layout)."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid input"}
    where = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path", "form")]
    field = ".".join(where) or None
    return InvalidInput(f"{field or 'input'}: {first.get('msg', 'invalid')}", field=field)


def nul_refused(field: str) -> InvalidInput:
    """The refusal of text holding U+0000 (422 ``input.invalid``), for the API and the pages:
    no name, code or note means it, and PostgreSQL can neither store nor compare it."""
    return InvalidInput(
        f"{field}:文字不能含有空字符 U+0000 {field}: text must not contain U+0000", field=field
    )


def _field_name(name: str) -> str:
    """A field's name as a refusal echoes it: without U+0000 itself, and short."""
    return name.replace(NUL, "")[:FIELD_NAME_CHARS] or "input"


def _nul_in_fields(fields: Iterable[tuple[str, Any]]) -> str | None:
    """The first of ``(name, value)`` whose name or text value holds U+0000."""
    for name, value in fields:
        if NUL in name or (isinstance(value, str) and NUL in value):
            return _field_name(name)
    return None


def _path_and_query(request: Request) -> list[tuple[str, Any]]:
    return [*request.path_params.items(), *request.query_params.multi_items()]


def _nul_in(value: Any, at: tuple[str, ...]) -> str | None:
    """Where in a JSON document a string holds U+0000 (dotted, as ``_field_of`` names it)."""
    if isinstance(value, str):
        return _field_name(".".join(at) or "body") if NUL in value else None
    items: Any = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    for key, item in items:
        found = _field_name(".".join((*at, key))) if NUL in key else _nul_in(item, (*at, key))
        if found is not None:
            return found
    return None


async def _nul_field(request: Request) -> str | None:
    found = _nul_in_fields(_path_and_query(request))
    if found is not None:
        return found
    body = await request.body()  # Starlette keeps it for the endpoint's own parsing
    if _JSON_NUL not in body:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None  # not JSON: the endpoint's validation says so
    return _nul_in(document, ())


async def nul_form_field(request: Request) -> str | None:
    """The first path, query or form field of a page's request whose text holds U+0000 (the
    form is parsed once: Starlette keeps it for the endpoint)."""
    fields = _path_and_query(request)
    if request.method == "POST":
        fields += (await request.form()).multi_items()
    return _nul_in_fields(fields)


class InputRoute(APIRoute):
    """A route that refuses text holding U+0000 in its path, query or JSON body (422, naming
    the field) before the endpoint's own validation: no name, code or note means it, and
    PostgreSQL cannot store or even compare it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            field = await _nul_field(request)
            if field is not None:
                raise nul_refused(field)
            return await handler(request)

        return checked


def install(app: FastAPI) -> None:
    """The error handlers, and the documentation of their answers."""
    _document_problems(app)

    @app.exception_handler(MicroloanError)
    async def _platform_error(request: Request, exc: MicroloanError) -> JSONResponse:
        headers = exc.headers if isinstance(exc, ApiError) else None
        return problem(status_of(exc), exc.code, exc.message, exc.field, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":  # its place is a character offset
            return problem(422, "input.invalid", "the body is not valid JSON", "body")
        field = _field_of(first.get("loc", ()))
        return problem(422, "input.invalid", f"{field}: {first.get('msg', 'invalid')}", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        page = _not_found_page(request.url.path) if exc.status_code == 404 else None
        if page is not None:
            return page(request)
        code, field = _HTTP_CODES.get(exc.status_code, ("http.error", None))
        return problem(exc.status_code, code, str(exc.detail), field, exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "server.error", "服务暂不可用 the service could not answer", None)
