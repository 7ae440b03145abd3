"""The public API: invitation checks and the referral landing, problem+json for every error,
the per-address rate limit, and the OpenAPI document."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from microloan.api.app import create_app
from microloan.api.problems import PROBLEM_JSON
from microloan.service.platform import Platform

from .test_invitations import forge, inviter, p  # noqa: F401  (p: the fixture)


@pytest.fixture
def client(p: Platform) -> TestClient:  # noqa: F811
    return TestClient(create_app(p))


def test_a_genuine_code_is_confirmed_with_its_channel(p: Platform, client: TestClient) -> None:  # noqa: F811
    _, code = inviter(p)
    answer = client.get(f"/v1/public/invitations/{code}").json()
    assert answer["genuine"] is True and answer["channel"] == "wechat"
    assert "免费" in answer["message_zh"] and answer["message_en"]
    landing = client.get(f"/v1/public/referrals/{code.lower()}").json()
    assert landing["genuine"] is True and landing["code"] == code
    assert landing["channel_name_zh"] and landing["channel_name_en"]


def test_forged_and_malformed_codes_are_not_genuine(p: Platform, client: TestClient) -> None:  # noqa: F811
    _, code = inviter(p)
    for bad in (forge(code), "NOT-A-CODE", "1234"):
        answer = client.get(f"/v1/public/invitations/{bad}")
        assert answer.status_code == 200
        assert answer.json()["genuine"] is False and answer.json()["channel"] is None


def test_errors_are_problem_json_with_code_and_field(client: TestClient) -> None:
    missing = client.get("/v1/public/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM_JSON
    assert missing.json()["code"] == "not_found"
    too_long = client.get("/v1/public/invitations/" + "A" * 65)
    assert too_long.status_code == 422
    body = too_long.json()
    assert body["code"] == "input.invalid" and body["field"] == "code"
    assert body["status"] == 422 and body["type"].endswith("/input.invalid")
    wrong_method = client.post("/v1/public/invitations/ABC")
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "method.not_allowed"


def test_the_public_pages_are_rate_limited_per_address(p: Platform) -> None:  # noqa: F811
    p.settings = p.settings.model_copy(update={"rate_limit_public": "3/minute"})
    client = TestClient(create_app(p))
    answers = [client.get("/v1/public/invitations/ABCD") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    last = answers[-1]
    assert last.json()["code"] == "rate.limited" and int(last.headers["Retry-After"]) >= 1


def test_the_openapi_document_is_served(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "/v1/public/invitations/{code}" in doc["paths"]
    assert client.get("/healthz").json() == {"status": "ok"}


def test_the_document_files_errors_under_problem_json(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    errors = [
        response
        for path, item in doc["paths"].items()
        if path.startswith("/v1/")  # the API; pages answer HTML
        for operation in item.values()
        for status, response in operation["responses"].items()
        if status.startswith("4")
    ]
    assert errors
    for response in errors:  # as sent: not under application/json
        assert list(response["content"]) == [PROBLEM_JSON]
        assert response["content"][PROBLEM_JSON]["schema"]["$ref"].endswith("/Problem")


def test_a_code_with_nul_is_refused_naming_it(client: TestClient) -> None:
    # PostgreSQL can neither store nor compare text with U+0000
    for path in ("/v1/public/invitations/A%00B", "/v1/public/referrals/%00"):
        r = client.get(path)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_JSON
        assert r.json()["code"] == "input.invalid" and r.json()["field"] == "code"


def test_the_check_page_answers_in_chinese_then_english(p: Platform, client: TestClient) -> None:  # noqa: F811
    _, code = inviter(p)
    page = client.get("/check", params={"code": code})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="zh-CN">' in html and "真:平台发出的正式邀请" in html
    assert '<label for="code">邀请码</label>' in html and 'id="code"' in html
    fake = client.get("/check", params={"code": forge(code), "lang": "en"})
    assert '<html lang="en">' in fake.text and "NOT genuine" in fake.text
    assert fake.cookies.get("lang") == "en"  # remembered for the next page
    assert '<html lang="en">' in client.get("/check").text


def test_the_elderly_mode_and_the_landing_page(p: Platform, client: TestClient) -> None:  # noqa: F811
    _, code = inviter(p)
    page = client.get(f"/r/{code}", params={"mode": "elderly"})
    assert 'class="mode-elderly"' in page.text and "好友邀请你开通" in page.text
    assert "开通和提额都免费" in page.text
    assert client.get("/static/site.css").status_code == 200
