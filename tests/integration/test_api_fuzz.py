"""The HTTP API fuzzed against its own OpenAPI document with schemathesis: every operation gets
generated requests, valid and invalid (schemathesis' examples, coverage and fuzzing phases),
and no answer may be a server error; answers keep to the documented status codes, content
types and bodies, and a request the document calls invalid is refused (4xx).

The platform holds real data first (a borrower with a line, consents, a card and a loan; an
operator of every role; a pending proposal), so the requests reach the handlers. Borrower
requests pass a channel gateway in front of the app that signs them over the exact method,
path, query and body the app receives; operator requests carry an administrator's bearer
token, and a second, lighter pass a customer service agent's. Each request is also checked
here: a signed or authenticated one is never refused as unauthenticated, and text holding
U+0000 (which PostgreSQL cannot store) is always refused, so the SQLite run guards PostgreSQL
too.

SQLite only, with a fixed seed, derandomized generation and bounded examples: a run is
reproducible and takes a minute or two.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import hypothesis
import pytest
import schemathesis
import sqlalchemy as sa
from fastapi.testclient import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from microloan.api.app import create_app
from microloan.api.gateway import HEADERS, signed_headers
from microloan.domain.schedule import Method
from microloan.service import decisions, lending, line_changes, operator_access, operators
from microloan.service.operators import Operator
from microloan.service.platform import Platform

from .decision_support import PASSWORD, activate, onboard, people, providers, scorecard

SECRETS = {"wechat": bytes(range(32)), "qq": bytes(range(32, 64))}
CLEAN = {"blocked": False, "ring": False, "emulator": False, "rooted": False, "serious": False}
SEED = 20260131
MAX_EXAMPLES = 25  # per operation in the fuzzing phase (the coverage phase adds its own cases)
MAX_EXAMPLES_LOWER_ROLE = 10
OPERATOR = "/v1/operator/"
SESSION = "/v1/operator/session"
PUBLIC = "/v1/public/"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# the fuzzer sends far more than a person would; the limits themselves are tested in
# test_api_borrower.py, test_api_operator.py and test_api_public.py
NO_LIMITS = {
    "rate_limit_borrower": "1000000/minute",
    "rate_limit_operator": "1000000/minute",
    "rate_limit_operator_login": "1000000/minute",
    "rate_limit_public": "1000000/minute",
}

ASGIApp = Callable[..., Any]
Message = dict[str, Any]


def _is_borrower(path: str) -> bool:
    return path.startswith("/v1/") and not path.startswith((OPERATOR, PUBLIC))


# ---------------------------------------------------------------------------------------------
# The channel gateway in front of the app


class SigningGateway:
    """ASGI middleware that signs each borrower request as the channel's gateway would: over
    the method, the raw path and query, and the body bytes, exactly as the app will read them
    (whatever the fuzzer made of them), with the platform's time and a fresh nonce."""

    def __init__(self, app: ASGIApp, p: Platform, channel: str, open_id: str) -> None:
        self.app = app
        self.p = p
        self.channel = channel
        self.open_id = open_id
        self._nonces = itertools.count(1)

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _is_borrower(scope["path"]):
            await self.app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            path = f"{path}?{scope['query_string'].decode('latin-1')}"
        signed = signed_headers(
            SECRETS[self.channel],
            scope["method"],
            path,
            self.channel,
            self.open_id,
            body,
            now=self.p.now(),
            nonce=f"fuzz-{next(self._nonces):08d}",
        )
        ours = {name.lower().encode() for name in HEADERS}
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in ours]
        headers += [(k.lower().encode(), v.encode()) for k, v in signed.items()]
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return dict(await receive())
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)


# ---------------------------------------------------------------------------------------------
# A platform with data, shared by the module's requests


@dataclass
class World:
    p: Platform
    app: ASGIApp
    tokens: dict[str, str]  # a live session by role
    admin: Operator

    def headers_for(self, method: str, path: str, role: str) -> dict[str, str]:
        if path == SESSION:
            if method != "DELETE":
                return {}  # logging in
            # logging out ends the session: a session of its own each time
            token = operator_access.open_session(self.p, self.admin, address="fuzz")["token"]
            return {"Authorization": f"Bearer {token}"}
        if path.startswith(OPERATOR):
            return {"Authorization": f"Bearer {self.tokens[role]}"}
        return {}


def _operator(p: Platform, role: str) -> Operator:
    made = operators.create_operator(p, f"fuzz_{role}", PASSWORD, [role])
    return Operator(made["operator_id"], made["username"], frozenset(made["roles"]))


@pytest.fixture(scope="module")
def world(
    sqlite_template: Any,
    tmp_path_factory: pytest.TempPathFactory,
    wall_clock: Callable[[], datetime],
) -> Iterator[World]:
    """One platform for the module: each operation's requests meet what the others left."""
    folder = tmp_path_factory.mktemp("fuzz")
    p = Platform.connect(sqlite_template.copy_to(folder / "microloan.sqlite3"), now=wall_clock)
    p.use_providers(providers())
    activate(p, folder, scorecard())  # operators "maker" and "checker" (risk analysts) too
    p.settings = p.settings.model_copy(
        update={
            "gateway_secrets": {k: base64.b64encode(v).decode() for k, v in SECRETS.items()},
            **NO_LIMITS,
        }
    )
    person = people(**CLEAN)[0]
    cid = onboard(p, person)  # identity, phone, card and consents
    assert decisions.apply(p, cid, person.primary_channel)["outcome"] == "approved"
    lending.draw(p, cid, 100_000, 3, Method.EQUAL_INSTALLMENT, "fuzz-draw", pay_now=True)
    maker = operators.authenticate(p, "maker", PASSWORD)
    line_changes.propose_change(p, maker, cid, event="freeze", reason="fuzz")  # pending
    tokens = {}
    for role in operators.ROLES:
        tokens[role] = operator_access.open_session(p, _operator(p, role), address="fuzz")["token"]
    admin = operators.authenticate(p, "fuzz_administrator", PASSWORD)
    open_id = person.open_id(person.primary_channel)
    assert open_id is not None
    app = SigningGateway(create_app(p), p, person.primary_channel, open_id)
    yield World(p, app, tokens, admin)
    p.dispose()


# ---------------------------------------------------------------------------------------------
# The schema and the checks


def _document() -> dict[str, Any]:
    """The app's OpenAPI document; building it touches no database."""
    return create_app(Platform(sa.create_engine("sqlite://"))).openapi()


# values in the platform's own formats, mixed into the generated ones, so that more requests
# get past the format checks to the rules behind them (real ids, replayed idempotency keys)
DICTIONARIES = {
    "ids": [1, 2, 3],
    "yuan": ["100", "1000.00", "12300", "0.01", "99.99", "100000", " 500 ", "-1", "1e3"],
    "methods": ["equal_principal", "equal_installment", "balloon"],
    "consents": ["credit_report", "sensitive_pi", "loan_agreement", "marketing"],
    "keys": ["fuzz-1", "fuzz-2", "fuzz-draw"],
    "searches": ["1", "8000", "叶", "张", "13800138000"],
}
BINDINGS = {
    **{
        f"path.{name}": "ids"
        for name in ("card_id", "decision_id", "loan_id", "case_id", "customer_id", "proposal_id")
    },
    "body.loan_id": "ids",
    "body.customer_id": "ids",
    "body.amount": "yuan",
    "body.limit": "yuan",
    "body.method": "methods",
    "body.kind": "consents",
    "path.kind": "consents",
    "header.Idempotency-Key": "keys",
    "query.q": "searches",
}


def _config(*, coverage: bool) -> Any:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "dictionaries": {name: {"values": v} for name, v in DICTIONARIES.items()},
            "parameters": {
                key: {"dictionary": name, "probability": 0.5} for key, name in BINDINGS.items()
            },
            "generation": {
                "deterministic": True,
                "database": "none",
                # tokens and the gateway's headers are added to each request, not generated
                "with-security-parameters": False,
                "allow-extra-parameters": False,
            },
            "phases": {"coverage": {"enabled": coverage}, "stateful": {"enabled": False}},
        }
    )


# the HTTP API; the pages (/app, /console …) answer HTML forms and are tested on their own
API = r"^/(v1/|healthz$)"
schema = schemathesis.openapi.from_dict(_document(), config=_config(coverage=True))
operator_schema = schemathesis.openapi.from_dict(_document(), config=_config(coverage=False))


def _holds_nul(request: Any) -> bool:
    body = request.body or b""
    raw = body if isinstance(body, bytes) else body.encode()
    return "%00" in str(request.url) or b"\\u0000" in raw


def _call(case: Any, world: World, role: str) -> None:
    method, path = case.method.upper(), case.operation.path
    headers = world.headers_for(method, path, role)
    response = case.call_and_validate(app=world.app, headers=headers, checks=CHECKS)
    status = response.status_code
    sent = response.request
    if _is_borrower(path) or (path.startswith(OPERATOR) and path != SESSION):
        assert status != 401, f"signed or logged in, refused as not: {sent.url}\n{response.text}"
    if role == "administrator":
        assert status != 403, f"an administrator refused: {sent.url}\n{response.text}"
    if _holds_nul(sent):
        assert 400 <= status < 500, f"text with U+0000 answered {status}: {sent.url}"


# reproducible: the same requests in the same order on every run
REPRODUCIBLE = hypothesis.settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)


@schema.include(path_regex=API).parametrize()
@hypothesis.settings(REPRODUCIBLE, max_examples=MAX_EXAMPLES)
def test_the_api_keeps_to_its_document_and_never_fails(case: Any, world: World) -> None:
    _call(case, world, "administrator")


@operator_schema.include(path_regex=f"^{OPERATOR}").parametrize()
@hypothesis.settings(REPRODUCIBLE, max_examples=MAX_EXAMPLES_LOWER_ROLE)
def test_a_lower_role_never_fails_either(case: Any, world: World) -> None:
    _call(case, world, "customer_service")


# ---------------------------------------------------------------------------------------------
# U+0000 in every text input of the document


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = doc["components"]["schemas"][name]
    return node


def _text_properties(doc: dict[str, Any], node: dict[str, Any]) -> Iterator[str]:
    """Names of a body's string properties, through refs and unions."""
    node = _resolve(doc, node)
    for part in node.get("oneOf", []) + node.get("anyOf", []):
        yield from _text_properties(doc, part)
    for name, prop in node.get("properties", {}).items():
        types = [_resolve(doc, p).get("type") for p in [prop, *prop.get("anyOf", [])]]
        if "string" in types:
            yield name


def _nul_requests() -> Iterator[tuple[str, str, dict[str, Any], str]]:
    """(method, path, request arguments, the field named) for each text input of the API."""
    doc = _document()
    for template, item in doc["paths"].items():
        if not (template.startswith("/v1/") or template == "/healthz"):
            continue
        for method, operation in item.items():
            params = [p for p in operation.get("parameters", []) if p["in"] in ("path", "query")]
            path = template
            for param in params:
                if param["in"] == "path":
                    path = path.replace("{" + param["name"] + "}", "1")
            for param in params:
                name = param["name"]
                if param["in"] == "path":
                    bad = template.replace("{" + name + "}", "a%00")
                    for other in params:
                        bad = bad.replace("{" + other["name"] + "}", "1")
                    yield method.upper(), bad, {}, name
                elif _resolve(doc, param["schema"]).get("type") == "string" or any(
                    _resolve(doc, p).get("type") == "string"
                    for p in param["schema"].get("anyOf", [])
                ):
                    yield method.upper(), path, {"params": {name: "a\x00"}}, name
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            for name in sorted(set(_text_properties(doc, body["schema"]))) if body else ():
                yield method.upper(), path, {"json": {name: "a\x00"}}, name


def test_text_with_nul_is_refused_naming_its_field(world: World) -> None:
    """PostgreSQL can neither store nor compare text holding U+0000; every text input of the
    API refuses it (422 naming the field) before any service sees it."""
    checked = 0
    with TestClient(world.app) as client:
        for method, path, kwargs, field in _nul_requests():
            headers = world.headers_for(method, path, "administrator")
            r = client.request(method, path, headers=headers, **kwargs)
            assert r.status_code == 422, (method, path, kwargs, r.text)
            assert r.json()["code"] == "input.invalid" and r.json()["field"] == field, r.text
            checked += 1
    assert checked >= 40  # every text input of the document, not a lucky few
