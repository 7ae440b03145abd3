"""``BorrowerHotPath`` answers the borrower API byte for byte as the routes do: one scripted
borrower session — onboarding, consents, an application, quotes, draws and repayments with
their replays and conflicts, reads, another borrower's ids, and requests the gateway or the
routes refuse — is sent to two identical platforms, one app with the hot path and one
without, and every status, header and body must be the same. The hot path must have answered
the plainly valid requests itself, and left the refused ones to the routes."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from microloan.api.app import create_app
from microloan.api.gateway import signed_headers
from microloan.service import payments
from microloan.service.platform import Platform
from microloan.sim.person import Person

from .decision_support import activate, invite, people, providers, scorecard
from .support import MakePlatform

SECRETS = {"wechat": bytes(range(32)), "qq": bytes(range(32, 64))}
CLEAN = {"blocked": False, "ring": False, "emulator": False, "rooted": False, "serious": False}


def _ready(p: Platform, tmp: Path) -> Platform:
    p.use_providers(providers())
    activate(p, tmp, scorecard())
    p.settings = p.settings.model_copy(
        update={"gateway_secrets": {k: base64.b64encode(v).decode() for k, v in SECRETS.items()}}
    )
    return p


@dataclass
class Session:
    """One borrower's requests to one app, each recorded: status, headers, body."""

    client: TestClient
    p: Platform
    person: Person
    answers: list[tuple[str, int, list[tuple[str, str]], bytes]] = field(default_factory=list)
    n: int = 0

    @property
    def channel(self) -> str:
        return self.person.primary_channel

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        nonce: str | None = None,
        sign_path: str | None = None,
        content_type: str | None = "application/json",
    ) -> Any:
        self.n += 1
        data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        open_id = self.person.open_id(self.channel)
        assert open_id is not None
        signed = signed_headers(
            SECRETS[self.channel],
            method,
            sign_path or path,
            self.channel,
            open_id,
            data,
            now=self.p.now(),
            nonce=nonce or f"{self.person.open_id(self.channel)}-{self.n:06d}"[-60:],
        )
        sent = {**signed, **(headers or {})}
        if data and content_type is not None:
            sent["Content-Type"] = content_type
        r = self.client.request(method, path, content=data, headers=sent)
        self.answers.append(
            (f"{method} {path}", r.status_code, sorted(r.headers.items()), r.content)
        )
        return r.json() if r.headers.get("content-type", "").endswith("json") else None


def _script(s: Session, other: Session | None) -> None:
    """The session: everything a borrower does, right and wrong."""
    person = s.person
    invite(s.p, s.channel, str(person.open_id(s.channel)), person.device_id)
    s.send("GET", "/v1/me")  # not yet verified: 404
    s.send(
        "POST",
        "/v1/onboarding/identity",
        {"name": person.name, "id_number": person.id_number, "device_id": person.device_id},
    )
    s.send("POST", "/v1/onboarding/phone", {"phone": person.phone})
    cards = s.send("POST", "/v1/onboarding/cards", {"card_number": person.card_number})
    s.send("GET", "/v1/onboarding/cards")
    for kind in ("credit_report", "sensitive_pi", "loan_agreement"):
        s.send("POST", "/v1/me/consents", {"kind": kind})
    s.send("POST", "/v1/me/consents", {"kind": "loan_agreement", "version": "0.0"})  # refused
    s.send("GET", "/v1/me/consents")
    s.send("GET", "/v1/me/line")  # no line yet: 404
    decision = s.send("POST", "/v1/applications")
    s.send("GET", f"/v1/applications/{decision['decision_id']}")
    s.send("GET", "/v1/applications/999999")
    s.send("GET", "/v1/me")
    s.send("GET", "/v1/me/line")
    quote = {"amount": "1200.00", "term_months": 6, "method": "equal_installment"}
    s.send("POST", "/v1/draws/quote", quote)
    s.send("POST", "/v1/draws/quote", {**quote, "term_months": 5})  # not a term: 422
    s.send("POST", "/v1/draws/quote", {**quote, "amount": "12.345"})  # not to the fen
    key = {"Idempotency-Key": f"draw-{person.open_id(s.channel)}"}
    drawn = s.send("POST", "/v1/draws", quote, headers=key)
    s.send("POST", "/v1/draws", quote, headers=key)  # the replay
    s.send("POST", "/v1/draws", {**quote, "amount": "1300.00"}, headers=key)  # conflict
    s.send("POST", "/v1/draws", quote)  # no key
    s.send("POST", "/v1/draws", quote, headers={"Idempotency-Key": "has space"})
    if drawn.get("status") == "pending":
        payments.work_once(s.p)
    loan_id = drawn["loan_id"]
    s.send("GET", "/v1/loans")
    s.send("GET", f"/v1/loans/{loan_id}")
    s.send("GET", f"/v1/loans/{loan_id}/payoff")
    s.send("GET", "/v1/loans/0")  # below the path's minimum: 422 from the routes
    s.send("GET", "/v1/loans/abc")
    s.send("GET", "/v1/loans/424242")
    pay = {"amount": "100.00", "loan_id": loan_id}
    s.send("POST", "/v1/repayments", pay, headers={"Idempotency-Key": "pay-1"})
    s.send("POST", "/v1/repayments", pay, headers={"Idempotency-Key": "pay-1"})
    s.send("POST", "/v1/repayments", {"amount": "99999.00"}, headers={"Idempotency-Key": "p2"})
    s.send("POST", "/v1/repayments", {"amount": "1.00", "loan_id": 424242}, headers=key)
    if other is not None:  # another borrower's loan, by its id
        theirs = other.answers and _loan_of(other)
        if theirs:
            s.send("GET", f"/v1/loans/{theirs}")
            s.send(
                "POST",
                "/v1/repayments",
                {"amount": "1.00", "loan_id": theirs},
                headers={"Idempotency-Key": "theirs"},
            )
    # what the gateway or the routes refuse
    s.send("GET", "/v1/me", nonce=f"{person.open_id(s.channel)}-{s.n:06d}"[-60:])  # replayed
    s.send("GET", "/v1/me", sign_path="/v1/me/line")  # signed for another path
    s.send("GET", "/v1/me?lang=en")  # a query string (signed without it)
    s.send("POST", "/v1/draws/quote", raw=b'{"amount": ')  # not JSON
    s.send("POST", "/v1/draws/quote", raw=b'{"amount": "1\\u0000", "term_months": 3}')
    s.send("POST", "/v1/draws/quote", quote, content_type="text/plain")
    s.send("POST", "/v1/draws/quote", quote, content_type=None)
    s.send("POST", "/v1/draws/quote", {**quote, "extra": "field"})
    s.send("POST", "/v1/applications", {"device_id": "x" * 65})
    s.send("DELETE", "/v1/me/consents/loan_agreement")
    s.send("POST", "/v1/draws", quote, headers={"Idempotency-Key": "after-withdrawal"})
    s.send("DELETE", "/v1/me/consents/nonsense")
    card_id = cards["cards"][0]["card_id"]
    s.send("POST", f"/v1/onboarding/cards/{card_id}/default")
    s.send("DELETE", f"/v1/onboarding/cards/{card_id}")  # the default card of a live loan


def _loan_of(s: Session) -> int | None:
    for what, status, _headers, body in s.answers:
        if what == "POST /v1/draws" and status in (201, 202):
            return int(json.loads(body)["loan_id"])
    return None


def _run(p: Platform, hot: bool) -> tuple[list[Any], dict[str, int]]:
    app = create_app(p, borrower_hot_path=hot)
    a, b = people(**CLEAN)[10:12]
    with TestClient(app) as client:
        first = Session(client, p, a)
        _script(first, None)
        second = Session(client, p, b)
        _script(second, first)
    return first.answers + second.answers, dict(app.state.hot_path_served)


def test_the_hot_path_answers_as_the_routes_do(make_platform: MakePlatform, tmp_path: Path) -> None:
    routes, routes_served = _run(_ready(make_platform(), tmp_path / "a"), hot=False)
    hot, hot_served = _run(_ready(make_platform(), tmp_path / "b"), hot=True)
    assert routes_served.get("borrower", 0) == 0
    assert [a[:2] for a in hot] == [a[:2] for a in routes]
    for mine, theirs in zip(hot, routes, strict=True):
        assert mine == theirs, mine[0]
    statuses = [a[1] for a in hot]
    assert {200, 201, 401, 404, 409, 422} <= set(statuses)
    # the plainly valid requests (and the refusals of endpoints and of the nonce) were its own
    answered = hot_served.get("borrower", 0)
    assert answered >= sum(1 for s in statuses if s < 300) + 10
    assert answered < len(hot) - 10  # what the gateway or the routes refuse is not


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_large_body_goes_to_the_routes_whole(platform: Platform, tmp_path: Path) -> None:
    p = _ready(platform, tmp_path)
    app = create_app(p)
    person = people(**CLEAN)[12]
    with TestClient(app) as client:
        s = Session(client, p, person)
        invite(p, s.channel, str(person.open_id(s.channel)), person.device_id)
        name = "张" * 30_000  # 90 kB of UTF-8: more than the hot path reads
        s.send("POST", "/v1/onboarding/identity", {"name": name, "id_number": person.id_number})
    status, body = s.answers[-1][1], json.loads(s.answers[-1][3])
    assert status == 422 and body["field"] == "name"  # the routes read it all and refused it
    assert app.state.hot_path_served.get("borrower", 0) == 0
