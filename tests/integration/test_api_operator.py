"""The operator API: sessions, the role of every endpoint, maker-checker, the audit trail and
masked personal data, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from microloan.api.app import create_app
from microloan.domain.rates import DailyRate
from microloan.service import lending, onboarding, operators
from microloan.service.platform import Platform
from microloan.store.schema import audit_log, operator, operator_session

from .decision_support import PASSWORD, onboard, open_review_case, people

BASE = "/v1/operator"
PROBLEM = "application/problem+json"


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform)) as c:
        yield c


def add_operator(p: Platform, username: str, *roles: str) -> None:
    operators.create_operator(p, username, PASSWORD, list(roles))


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    r = client.post(f"{BASE}/session", json={"username": username, "password": password})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def actions(p: Platform) -> list[str]:
    with p.engine.connect() as conn:
        return list(
            conn.execute(sa.select(audit_log.c.action).order_by(audit_log.c.audit_id)).scalars()
        )


def assert_problem(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == code


# -- sessions --------------------------------------------------------------------------------------


def test_login_me_logout(platform: Platform, client: TestClient) -> None:
    add_operator(platform, "alice", "risk_analyst", "finance")
    r = client.post(f"{BASE}/session", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 201
    body = r.json()
    token = body["token"]
    assert len(token) >= 43 and body["operator"] == {
        "username": "alice",
        "roles": ["finance", "risk_analyst"],
    }
    with platform.engine.connect() as conn:
        stored = conn.execute(sa.select(operator_session)).one()
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    headers = {"Authorization": f"Bearer {token}"}
    me = client.get(f"{BASE}/me", headers=headers)
    assert me.status_code == 200 and me.json()["username"] == "alice"

    assert client.delete(f"{BASE}/session", headers=headers).json() == {"status": "revoked"}
    r = client.get(f"{BASE}/me", headers=headers)
    assert_problem(r, 401, "operator.unauthorised")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert actions(platform)[-2:] == ["operator.login", "operator.logout"]


def test_missing_unknown_expired_and_deactivated_sessions(
    platform: Platform, client: TestClient
) -> None:
    add_operator(platform, "bob", "auditor")
    headers = login(client, "bob")
    for bad in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic Ym9iOng="}):
        r = client.get(f"{BASE}/me", headers=bad)
        assert_problem(r, 401, "operator.unauthorised")
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert client.get(f"{BASE}/me", headers=headers).status_code == 200

    start = platform.now()
    later = start + timedelta(hours=platform.settings.operator_session_hours, seconds=1)
    platform.now = lambda: later
    assert_problem(client.get(f"{BASE}/me", headers=headers), 401, "operator.unauthorised")
    platform.now = lambda: start

    assert client.get(f"{BASE}/me", headers=headers).status_code == 200
    with platform.engine.begin() as conn:
        conn.execute(operator.update().where(operator.c.username == "bob").values(active=False))
    assert_problem(client.get(f"{BASE}/me", headers=headers), 401, "operator.unauthorised")


def test_wrong_password_and_unknown_user_are_one_401_and_audited(
    platform: Platform, client: TestClient
) -> None:
    add_operator(platform, "carol", "finance")
    wrong = client.post(f"{BASE}/session", json={"username": "carol", "password": "x" * 12})
    unknown = client.post(f"{BASE}/session", json={"username": "nobody", "password": PASSWORD})
    for r in (wrong, unknown):
        assert_problem(r, 401, "operator.unauthorised")
        assert "token" not in r.json()
    assert wrong.json()["detail"] == unknown.json()["detail"]
    with platform.engine.connect() as conn:
        failed = conn.execute(
            sa.select(audit_log).where(audit_log.c.action == "operator.login.failed")
        ).all()
    assert [r.subject for r in failed] == ["operator:carol", "operator:nobody"]
    assert all(r.operator_id is None and PASSWORD not in r.detail for r in failed)
    assert_problem(client.post(f"{BASE}/session", json={"username": "carol"}), 422, "input.invalid")


def test_login_is_rate_limited_per_address_and_per_username(platform: Platform) -> None:
    platform.settings = platform.settings.model_copy(
        update={"rate_limit_operator_login": "3/minute"}
    )
    add_operator(platform, "dave", "finance")
    app = create_app(platform)
    with TestClient(app, client=("10.0.0.1", 1)) as a, TestClient(app, client=("10.0.0.2", 1)) as b:
        for _ in range(3):
            r = a.post(f"{BASE}/session", json={"username": "dave", "password": "wrong-pass-1"})
            assert r.status_code == 401
        # the right password is refused too once the limit is reached
        r = a.post(f"{BASE}/session", json={"username": "dave", "password": PASSWORD})
        assert_problem(r, 429, "rate.limited")
        assert int(r.headers["retry-after"]) >= 1
        # another address, same name: the name's own limit
        r = b.post(f"{BASE}/session", json={"username": "dave", "password": PASSWORD})
        assert_problem(r, 429, "rate.limited")
        # the first address, other names: the address's limit
        r = a.post(f"{BASE}/session", json={"username": "erin", "password": PASSWORD})
        assert_problem(r, 429, "rate.limited")
    assert actions(platform).count("operator.login.failed") == 3


def test_requests_are_rate_limited_per_operator(platform: Platform) -> None:
    platform.settings = platform.settings.model_copy(update={"rate_limit_operator": "3/minute"})
    add_operator(platform, "frank", "auditor")
    with TestClient(create_app(platform)) as client:
        headers = login(client, "frank")
        for _ in range(3):
            assert client.get(f"{BASE}/me", headers=headers).status_code == 200
        assert_problem(client.get(f"{BASE}/me", headers=headers), 429, "rate.limited")


# -- who may do what -------------------------------------------------------------------------------

ALL = frozenset(operators.ROLES)
CUSTOMER = frozenset(
    {"customer_service", "collections", "risk_analyst", "auditor", "administrator"}
)
RISK = frozenset({"risk_analyst", "administrator"})
WRITE_OFF = frozenset({"finance", "collections", "administrator"})
CHECKERS = frozenset({"risk_analyst", "finance", "collections", "administrator"})
REPORTS = frozenset({"finance", "risk_analyst", "auditor", "administrator"})
AUDITORS = frozenset({"auditor", "administrator"})

# (method, path, body, roles allowed, status when allowed); the data do not exist, so an allowed
# call that reaches its subject answers 404, which shows the role check came first
MATRIX: list[tuple[str, str, dict[str, Any] | None, frozenset[str], int]] = [
    ("GET", "/me", None, ALL, 200),
    ("GET", "/customers?q=张", None, CUSTOMER, 200),
    ("GET", "/customers/999", None, CUSTOMER, 404),
    ("GET", "/loans/999", None, CUSTOMER, 404),
    ("GET", "/reviews", None, RISK | {"auditor"}, 200),
    ("POST", "/reviews/999/decision", {"decision": "approve"}, RISK, 404),
    ("GET", "/proposals?status=pending", None, CHECKERS | {"auditor"}, 200),
    (
        "POST",
        "/proposals",
        {"kind": "line.change", "customer_id": 999, "limit": "30000", "reason": "raise"},
        RISK,
        404,
    ),
    (
        "POST",
        "/proposals",
        {"kind": "loan.write_off", "loan_id": 999, "reason": "dpd"},
        WRITE_OFF,
        404,
    ),
    ("POST", "/proposals", {"kind": "model.activate", "version": "none"}, RISK, 404),
    ("POST", "/proposals/999/approve", {"note": "ok"}, CHECKERS, 404),
    ("POST", "/proposals/999/reject", None, CHECKERS, 404),
    ("GET", "/write-offs/candidates", None, WRITE_OFF | {"auditor"}, 200),
    ("GET", "/eod/runs", None, REPORTS, 200),
    ("GET", "/portfolio?date=2026-01-30", None, REPORTS, 404),
    ("GET", "/audit?limit=5", None, AUDITORS, 200),
    ("GET", "/operators", None, AUDITORS, 200),
    (
        "POST",
        "/operators",
        {"username": "newbie", "password": "another-passw0rd", "roles": ["finance"]},
        frozenset({"administrator"}),
        201,
    ),
]


@pytest.mark.parametrize("role", operators.ROLES)
def test_authorisation_matrix(platform: Platform, client: TestClient, role: str) -> None:
    add_operator(platform, "someone", role)
    headers = login(client, "someone")
    wrong = []
    for method, path, body, allowed, status in MATRIX:
        r = client.request(method, BASE + path, json=body, headers=headers)
        expected = status if role in allowed else 403
        if r.status_code != expected:
            wrong.append(f"{method} {path}: {r.status_code} (expected {expected}) {r.text[:120]}")
        elif expected == 403:
            assert r.headers["content-type"].startswith(PROBLEM)
            assert r.json()["code"] == "operator.forbidden"
    assert not wrong, "\n".join(wrong)
    denied = sum(1 for *_, allowed, _ in MATRIX if role not in allowed)
    assert actions(platform).count("access.denied") == denied


def test_the_audit_log_has_no_way_to_change_it(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    methods = {m for path, ops in paths.items() if path.startswith(f"{BASE}/audit") for m in ops}
    assert methods == {"get"}
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        assert client.request(method, f"{BASE}/audit").status_code == 405


# -- maker-checker ---------------------------------------------------------------------------------


def test_maker_checker_through_the_api(platform: Platform, client: TestClient) -> None:
    add_operator(platform, "maker", "risk_analyst")
    add_operator(platform, "checker", "risk_analyst")
    add_operator(platform, "helpdesk", "customer_service")
    add_operator(platform, "cashier", "finance")
    maker, checker = login(client, "maker"), login(client, "checker")
    helpdesk, cashier = login(client, "helpdesk"), login(client, "cashier")
    cid = lending.create_customer(platform, "王芳")
    lending.grant_line(platform, cid, 1_000_000, DailyRate.parse("0.0005"))

    change = {"kind": "line.change", "customer_id": cid, "limit": "30000", "reason": "good payer"}
    r = client.post(f"{BASE}/proposals", json=change, headers=maker)
    assert r.status_code == 201 and r.json()["status"] == "pending"
    pid = r.json()["proposal_id"]
    assert_problem(
        client.post(f"{BASE}/proposals", json=change, headers=checker), 409, "proposal.pending"
    )
    assert client.get(f"{BASE}/customers/{cid}", headers=checker).json()["line"]["limit"] == (
        "10000.00"
    )

    assert_problem(
        client.post(f"{BASE}/proposals/{pid}/approve", headers=maker), 403, "proposal.same_operator"
    )
    assert_problem(
        client.post(f"{BASE}/proposals/{pid}/approve", headers=helpdesk), 403, "operator.forbidden"
    )
    # finance may check write-offs, not line changes
    assert_problem(
        client.post(f"{BASE}/proposals/{pid}/approve", headers=cashier), 403, "operator.forbidden"
    )
    r = client.post(f"{BASE}/proposals/{pid}/approve", json={"note": "agreed"}, headers=checker)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"
    assert client.get(f"{BASE}/customers/{cid}", headers=maker).json()["line"]["limit"] == (
        "30000.00"
    )
    assert_problem(
        client.post(f"{BASE}/proposals/{pid}/reject", headers=checker), 409, "proposal.decided"
    )

    freeze = {"kind": "line.change", "customer_id": cid, "event": "freeze", "reason": "fraud"}
    fid = client.post(f"{BASE}/proposals", json=freeze, headers=checker).json()["proposal_id"]
    r = client.post(f"{BASE}/proposals/{fid}/reject", headers=maker)
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    listed = client.get(f"{BASE}/proposals?status=rejected", headers=maker).json()["proposals"]
    assert [x["proposal_id"] for x in listed] == [fid]
    assert_problem(
        client.post(f"{BASE}/proposals", json={**change, "limit": "-5"}, headers=maker),
        422,
        "input.invalid",
    )
    log = actions(platform)
    for action in ("line.change.propose", "line.change.approve", "line.change.reject"):
        assert action in log
    assert log.count("access.denied") == 3


# -- customers, reviews, masking and the audit trail ----------------------------------------------


def _onboarded(p: Platform) -> tuple[int, Any]:
    person = people(blocked=False, ring=False, shared_device=False)[0]
    return onboard(p, person), person


def test_search_review_and_360_show_masked_data_only_and_are_audited(
    platform: Platform, client: TestClient
) -> None:
    cid, person = _onboarded(platform)
    case_id = open_review_case(platform, cid, person.primary_channel)
    add_operator(platform, "analyst", "risk_analyst")
    add_operator(platform, "service", "customer_service")
    add_operator(platform, "auditor", "auditor")
    analyst, service = login(client, "analyst"), login(client, "service")
    secrets_ = [person.id_number, person.phone, person.card_number]
    if len(person.name) > 1:
        secrets_.append(person.name)

    queue = client.get(f"{BASE}/reviews", headers=analyst).json()["cases"]
    assert [c["case_id"] for c in queue] == [case_id]
    r = client.post(
        f"{BASE}/reviews/{case_id}/decision",
        json={"decision": "approve", "note": "checked by phone"},
        headers=analyst,
    )
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    assert_problem(
        client.post(
            f"{BASE}/reviews/{case_id}/decision", json={"decision": "decline"}, headers=analyst
        ),
        409,
        "review.decided",
    )

    texts = [json.dumps(queue, ensure_ascii=False)]
    for q in (str(cid), person.phone[-4:], person.name[:1]):
        r = client.get(f"{BASE}/customers", params={"q": q}, headers=service)
        assert r.status_code == 200, r.text
        assert cid in [c["customer_id"] for c in r.json()["customers"]], q
        texts.append(r.text)
    view = client.get(f"{BASE}/customers/{cid}", headers=service)
    assert view.status_code == 200
    body = view.json()
    assert body["line"]["limit"] == "5000.00" and body["reviews"][0]["status"] == "approved"
    assert body["decisions"][0]["reasons"] == ["fraud.device.shared"]
    assert body["profile"]["id_number"].count("*") >= 8 and "*" in body["profile"]["phone"]
    assert all("*" in c["card_number"] for c in body["profile"]["cards"])
    texts.append(view.text)
    for text in texts:
        for secret in secrets_:
            assert secret not in text

    log = client.get(
        f"{BASE}/audit", params={"subject": f"customer:{cid}"}, headers=login(client, "auditor")
    )
    assert log.status_code == 200
    seen = [(e["action"], e["operator"]) for e in log.json()["entries"]]
    assert ("customer.view", "service") in seen and ("review.approved", "analyst") in seen
    all_actions = actions(platform)
    assert all_actions.count("customer.search") == 3
    assert "review.queue.view" in all_actions and all_actions[-1] == "audit.view"
    with platform.engine.connect() as conn:
        details = " ".join(conn.execute(sa.select(audit_log.c.detail)).scalars())
    for secret in secrets_:
        assert secret not in details
    assert onboarding.profile(platform, cid)["customer_id"] == cid


def test_every_read_is_audited(platform: Platform, client: TestClient) -> None:
    add_operator(platform, "root", "administrator")
    headers = login(client, "root")
    cid = lending.create_customer(platform, "赵六")
    for path in (
        f"/customers/{cid}",
        "/customers?q=赵",
        "/reviews",
        "/proposals",
        "/write-offs/candidates",
        "/eod/runs",
        "/operators",
        "/audit",
    ):
        assert client.get(BASE + path, headers=headers).status_code == 200, path
    assert actions(platform)[-8:] == [
        "customer.view",
        "customer.search",
        "review.queue.view",
        "proposal.list",
        "write_off.candidates.view",
        "eod.view",
        "operator.list",
        "audit.view",
    ]
    view = client.get(f"{BASE}/customers/{cid}", headers=headers).json()
    assert view["name"] == "赵*" and view["profile"] is None and view["line"] is None


def test_an_administrator_creates_operators(platform: Platform, client: TestClient) -> None:
    add_operator(platform, "root", "administrator")
    headers = login(client, "root")
    new = {"username": "grace", "password": "grace-is-0k-now", "roles": ["collections"]}
    r = client.post(f"{BASE}/operators", json=new, headers=headers)
    assert_problem(r, 422, "input.invalid")  # contains the username
    new["password"] = "c0llect-them-all"
    r = client.post(f"{BASE}/operators", json=new, headers=headers)
    assert r.status_code == 201 and r.json()["roles"] == ["collections"]
    assert_problem(
        client.post(f"{BASE}/operators", json=new, headers=headers), 409, "operator.exists"
    )
    bad_role = {**new, "username": "heidi", "roles": ["king"]}
    assert_problem(
        client.post(f"{BASE}/operators", json=bad_role, headers=headers),
        422,
        "operator.role.unknown",
    )
    weak = {**new, "username": "ivan", "password": "short"}
    assert_problem(
        client.post(f"{BASE}/operators", json=weak, headers=headers), 422, "input.invalid"
    )
    me = client.get(f"{BASE}/me", headers=login(client, "grace", "c0llect-them-all")).json()
    assert me["roles"] == ["collections"]
    assert "operator.created" in actions(platform)


def test_text_no_database_keeps_and_ids_no_database_holds_are_refused(
    platform: Platform, client: TestClient
) -> None:
    """Each of these was a 500 (PostgreSQL refuses text with U+0000; no database holds an id
    of 2**63): now a 422 naming the field."""
    add_operator(platform, "root", "administrator")
    headers = login(client, "root")
    nul = "a\x00"
    new = {"username": "newbie", "password": "another-passw0rd", "roles": ["finance"]}
    for method, path, kwargs, field in (
        ("GET", "/customers", {"params": {"q": nul}}, "q"),
        ("GET", "/audit", {"params": {"subject": nul}}, "subject"),
        ("GET", "/audit", {"params": {"action": nul}}, "action"),
        ("GET", "/audit", {"params": {"before_id": str(2**63)}}, "before_id"),
        ("POST", "/proposals", {"json": {"kind": "model.activate", "version": nul}}, "version"),
        ("POST", "/operators", {"json": {**new, "display_name": nul}}, "display_name"),
        ("POST", "/operators", {"json": {**new, "roles": ["finance", nul]}}, "roles.1"),
        ("POST", "/session", {"json": {"username": nul, "password": PASSWORD}}, "username"),
    ):
        r = client.request(method, BASE + path, headers=headers, **kwargs)
        assert_problem(r, 422, "input.invalid")
        assert r.json()["field"] == field, r.text
    assert client.get(f"{BASE}/audit", params={"before_id": 2**62}, headers=headers).json()[
        "entries"
    ]
    assert "operator.login.failed" not in actions(platform)  # refused before the service
