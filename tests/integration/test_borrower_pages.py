"""The borrower pages on both databases: the demo login standing in for the gateway, the whole
journey from invitation to payoff through the forms, CSRF and idempotency of the forms, masked
personal data, that one borrower's pages never show another's loans, and that text holding
U+0000 is refused on every form before it reaches the database."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from microloan.api.app import create_app
from microloan.service import borrower_view, payments
from microloan.service.invitation_support import fresh_codes
from microloan.service.platform import Platform
from microloan.sim.person import Person
from microloan.store.schema import channel_identity, loan, metadata, repayment

from .decision_support import activate, invite, people, providers, scorecard

SECRETS = {"wechat": bytes(range(32)), "qq": bytes(range(32, 64))}
CLEAN = {"blocked": False, "ring": False, "emulator": False, "rooted": False, "serious": False}
HIDDEN = re.compile(r'name="(csrf|key)" value="([^"]+)"')


@pytest.fixture
def ready(platform: Platform, tmp_path: Path) -> Platform:
    platform.use_providers(providers())
    activate(platform, tmp_path, scorecard())
    platform.settings = platform.settings.model_copy(
        update={
            "gateway_secrets": {k: base64.b64encode(v).decode() for k, v in SECRETS.items()},
            "demo_login": True,
            "population_path": str(tmp_path / "none.parquet"),  # no prefill: the test types
        }
    )
    return platform


@pytest.fixture
def client(ready: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(ready)) as c:
        yield c


def hidden(page: httpx.Response, name: str) -> str:
    found = dict(HIDDEN.findall(page.text))
    return found[name]


def log_in(client: TestClient, channel: str, open_id: str) -> httpx.Response:
    r = client.post(
        "/app/login", data={"channel": channel, "open_id": open_id}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/app", r.text
    return client.get("/app")


def post(client: TestClient, path: str, page: httpx.Response, **data: str) -> httpx.Response:
    """Submit a form of ``page`` with its CSRF token, not following the redirect."""
    return client.post(path, data={"csrf": hidden(page, "csrf"), **data}, follow_redirects=False)


def onboard_by_forms(client: TestClient, person: Person) -> None:
    page = client.get("/app/onboarding")
    for step, data in (
        ("identity", {"name": person.name, "id_number": person.id_number}),
        ("phone", {"phone": person.phone}),
        ("card", {"card_number": person.card_number}),
    ):
        r = post(client, f"/app/onboarding/{step}", page, **data)
        assert r.status_code == 303, r.text
    r = client.post(
        "/app/onboarding/consents",
        data={
            "csrf": hidden(page, "csrf"),
            "agree": ["credit_report", "sensitive_pi"],  # the loan agreement comes with a draw
        },
        follow_redirects=False,
    )
    assert r.status_code == 303


def count(p: Platform, table: sa.Table) -> int:
    with p.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def person_and_id(person: Person) -> tuple[str, str]:
    open_id = person.open_id(person.primary_channel)
    assert open_id is not None
    return person.primary_channel, open_id


def signed_in(p: Platform, client: TestClient, person: Person) -> httpx.Response:
    """``person`` invited and signed in through the demo login: the home page."""
    channel, open_id = person_and_id(person)
    invite(p, channel, open_id, person.device_id)
    return log_in(client, channel, open_id)


def with_a_line(p: Platform, client: TestClient, person: Person) -> None:
    """``person`` signed in, onboarded by the forms, and granted a line."""
    home = signed_in(p, client, person)
    onboard_by_forms(client, person)
    post(client, "/app/apply", home)


def test_journey_from_invitation_to_payoff(ready: Platform, client: TestClient) -> None:
    person = people(**CLEAN)[0]
    channel, open_id = person_and_id(person)
    invite(ready, channel, open_id, person.device_id)

    first = client.get("/app", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/app/login")
    home = log_in(client, channel, open_id)
    assert "实名、手机号、绑卡和授权" in home.text

    onboard_by_forms(client, person)
    page = client.get("/app/onboarding")
    for shown in (person.id_number, person.phone, person.card_number):
        assert shown not in page.text
    home = client.get("/app")
    assert "申请额度" in home.text
    r = post(client, "/app/apply", home)
    assert r.status_code == 303
    home = client.get("/app")
    line = borrower_view.standing(ready, channel, open_id)["line"]
    assert line is not None and f"¥{line['available']}" in home.text

    quote = client.get("/app/draw/quote?amount=1000&term=3&method=equal_installment")
    assert quote.status_code == 200, quote.text
    assert quote.text.count('<th scope="row">') == 3  # the schedule, one row a period
    for label in ("日利率", "年利率(单利)", "年化利率(APR)", "还款计划"):
        assert label in quote.text
    assert 'name="agree"' in quote.text  # the loan agreement is asked for before the draw
    assert count(ready, loan) == 0  # a quote moves no money

    key = hidden(quote, "key")
    form = {"amount": "1000", "term": "3", "method": "equal_installment", "key": key}
    drawn = post(client, "/app/draw", quote, agree="yes", **form)
    assert drawn.status_code == 303, drawn.text
    loan_path = drawn.headers["location"].split("?")[0]
    again = post(client, "/app/draw", quote, **form)  # a double submit: the same loan
    assert again.headers["location"].split("?")[0] == loan_path
    assert count(ready, loan) == 1
    if ready.is_postgres:
        payments.work_once(ready)  # the worker pays it
    detail = client.get(loan_path)
    assert "还款中" in detail.text and "1000.00" in detail.text

    repay = client.get("/app/repay")
    payoff = re.search(r'id="amount"[^>]*value="([0-9.]+)"', repay.text)
    assert payoff is not None and payoff.group(1) == "1000.00"  # drawn today: no interest
    paid = post(client, "/app/repay", repay, loan="all", amount="1000.00", key=hidden(repay, "key"))
    assert paid.status_code == 200 and "还款成功" in paid.text
    again_paid = post(
        client, "/app/repay", repay, loan="all", amount="1000.00", key=hidden(repay, "key")
    )
    assert again_paid.status_code == 200 and count(ready, repayment) == 1
    assert "已结清" in client.get("/app/loans").text
    assert "没有待还的借款" in client.get("/app/repay").text


def test_entering_with_a_friends_code(ready: Platform, client: TestClient) -> None:
    inviter, friend = people(**CLEAN)[:2]
    channel, inviter_id = person_and_id(inviter)
    invite(ready, channel, inviter_id, inviter.device_id)
    with ready.engine.begin() as conn:  # a white-list run gives each invitee their own code
        conn.execute(
            channel_identity.update()
            .where(channel_identity.c.open_id == inviter_id)
            .values(referral_code=fresh_codes(conn, ready.vault, 1)[0])
        )
    home = log_in(client, channel, inviter_id)
    code = borrower_view.standing(ready, channel, inviter_id)["referral_code"]
    assert code

    fchannel, friend_id = person_and_id(friend)
    if fchannel != channel:
        pytest.skip("the two people use different channels")
    home = log_in(client, channel, friend_id)
    assert "仅限受邀用户" in home.text
    bad = post(client, "/app/invitation", home, code="AAAA-BBBB-CCCC-DDDD")
    assert bad.status_code in (409, 422) and 'role="alert"' in bad.text
    ok = post(client, "/app/invitation", home, code=code)
    assert ok.status_code == 303 and ok.headers["location"] == "/app/onboarding"
    assert borrower_view.standing(ready, channel, friend_id)["invited"]


def test_forms_need_the_csrf_token(ready: Platform, client: TestClient) -> None:
    person = people(**CLEAN)[0]
    signed_in(ready, client, person)
    r = client.post(
        "/app/onboarding/identity",
        data={"csrf": "0" * 32, "name": person.name, "id_number": person.id_number},
    )
    assert r.status_code == 403 and "page.csrf" in r.text
    assert borrower_view.customer_of(ready, *person_and_id(person)) is None  # nothing changed


def test_a_borrower_never_sees_anothers_loan(ready: Platform, client: TestClient) -> None:
    a, b = people(**CLEAN)[:2]
    loan_ids = []
    for person in (a, b):
        with_a_line(ready, client, person)
        quote = client.get("/app/draw/quote?amount=500&term=3")
        drawn = post(
            client,
            "/app/draw",
            quote,
            amount="500",
            term="3",
            key=hidden(quote, "key"),
            agree="yes",
        )
        assert drawn.status_code == 303, drawn.text
        loan_ids.append(int(drawn.headers["location"].split("/")[-1].split("?")[0]))
    # now signed in as b
    assert client.get(f"/app/loans/{loan_ids[1]}").status_code == 200
    listed = client.get("/app/loans")
    assert f'href="/app/loans/{loan_ids[1]}"' in listed.text
    assert f'href="/app/loans/{loan_ids[0]}"' not in listed.text
    theirs = client.get(f"/app/loans/{loan_ids[0]}")
    assert theirs.status_code == 404 and a.name not in theirs.text
    repay = client.get(f"/app/repay?loan={loan_ids[0]}")
    r = post(client, "/app/repay", repay, loan=str(loan_ids[0]), amount="1", key="k-1")
    assert r.status_code == 404 and count(ready, repayment) == 0


def test_the_draw_quote_refuses_more_than_the_line(ready: Platform, client: TestClient) -> None:
    with_a_line(ready, client, people(**CLEAN)[0])
    r = client.get("/app/draw/quote?amount=99999999&term=3")
    assert r.status_code == 409 and "loan.draw.exceeds_available" in r.text
    assert 'aria-invalid="true"' in r.text


def test_login_refuses_a_forged_cookie_and_is_off_where_configured(
    ready: Platform, client: TestClient
) -> None:
    client.cookies.set("ml_borrower", "e30.deadbeef")
    r = client.get("/app", follow_redirects=False)
    assert r.status_code == 303 and "/app/login" in r.headers["location"]
    ready.settings = ready.settings.model_copy(update={"demo_login": False})
    assert client.get("/app/login").status_code == 404
    r = client.post("/app/login", data={"channel": "wechat", "open_id": "x"})
    assert r.status_code == 404 and "ml_borrower" not in r.headers.get("set-cookie", "")


def test_english_and_elderly_mode(ready: Platform, client: TestClient) -> None:
    with_a_line(ready, client, people(**CLEAN)[0])
    en = client.get("/app?lang=en")
    assert "Available" in en.text and 'lang="en"' in en.text
    elderly = client.get("/app/draw?mode=elderly")
    assert 'class="mode-elderly"' in elderly.text
    assert 'name="method" value="equal_installment"' in elderly.text  # one method, no choice
    quote = client.get("/app/draw/quote?amount=1000&term=3")
    assert '<th scope="col">Interest</th>' not in quote.text  # a simpler schedule


# ---------------------------------------------------------------------------------------------
# Text holding U+0000, which PostgreSQL can neither store nor compare

NUL = "\x00"


def snapshot(p: Platform) -> dict[str, list[str]]:
    """Every row of every table: what a refused form must leave as it was."""
    with p.engine.connect() as conn:
        return {
            t.name: sorted(repr(tuple(row)) for row in conn.execute(sa.select(t)))
            for t in metadata.sorted_tables
        }


def assert_refused(r: httpx.Response, field: str) -> None:
    """A 422 page naming the field, Chinese first and English beside it, linking home."""
    assert r.status_code == 422, (field, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert 'role="alert"' in html and "input.invalid" in html and 'href="/app"' in html
    zh = html.index(f"{field}:文字不能含有空字符 U+0000")
    assert zh < html.index(f"{field}: text must not contain U+0000")


def test_text_holding_nul_is_refused_on_every_form(ready: Platform, client: TestClient) -> None:
    person = people(**CLEAN)[0]
    channel, open_id = person_and_id(person)
    invite(ready, channel, open_id, person.device_id)
    before = snapshot(ready)
    r = client.post(
        "/app/login", data={"channel": channel, "open_id": open_id + NUL}, follow_redirects=False
    )
    assert_refused(r, "open_id")
    assert "ml_borrower" not in r.headers.get("set-cookie", "")
    assert client.get("/app", follow_redirects=False).status_code == 303  # not signed in

    home = log_in(client, channel, open_id)
    assert_refused(client.get("/app", params={"code": "A" + NUL}), "code")
    assert_refused(post(client, "/app/invitation", home, code="AAAA" + NUL), "code")
    identity = {"name": person.name + NUL, "id_number": person.id_number}
    assert_refused(post(client, "/app/onboarding/identity", home, **identity), "name")
    assert_refused(post(client, "/app/onboarding/ident%00ity", home), "step")
    assert snapshot(ready) == before
    assert borrower_view.customer_of(ready, channel, open_id) is None

    onboard_by_forms(client, person)
    home = client.get("/app")
    before = snapshot(ready)
    for path, data, field in (
        ("/app/onboarding/phone", {"phone": "1380013800" + NUL}, "phone"),
        ("/app/onboarding/card", {"card_number": person.card_number + NUL}, "card_number"),
        ("/app/onboarding/consents", {"agree": "credit_report" + NUL}, "agree"),
        ("/app/consents", {"kind": "credit_report" + NUL, "action": "withdraw"}, "kind"),
        ("/app/consents", {"kind": "credit_report", "action": "withdraw", NUL: "x"}, "input"),
        ("/app/apply", {"note": "a" + NUL}, "note"),  # a field the form lacks: still refused
        ("/app/apply", {"csrf": hidden(home, "csrf") + NUL}, "csrf"),
        ("/app/logout", {"csrf": hidden(home, "csrf") + NUL}, "csrf"),
    ):
        assert_refused(post(client, path, home, **data), field)
    assert snapshot(ready) == before
    assert client.get("/app/consents").status_code == 200  # still signed in

    assert post(client, "/app/apply", home).status_code == 303
    for query, field in (
        ({"amount": "1000" + NUL, "term": "3"}, "amount"),
        ({"amount": "1000", "term": "3", "method": "equal_installment" + NUL}, "method"),
    ):
        assert_refused(client.get("/app/draw/quote", params=query), field)
    quote = client.get("/app/draw/quote", params={"amount": "1000", "term": "3"})
    form = {"amount": "1000", "term": "3", "key": hidden(quote, "key"), "agree": "yes"}
    before = snapshot(ready)
    assert_refused(post(client, "/app/draw", quote, **{**form, "key": form["key"] + NUL}), "key")
    assert_refused(post(client, "/app/draw", quote, **form, method="equal" + NUL), "method")
    assert snapshot(ready) == before  # no loan, and the loan agreement not granted either

    drawn = post(client, "/app/draw", quote, **form)
    assert drawn.status_code == 303, drawn.text
    loan_path = drawn.headers["location"].split("?")[0]
    assert_refused(client.get(loan_path + "%00"), "loan_id")
    if ready.is_postgres:
        payments.work_once(ready)  # the worker pays it
    repay = client.get("/app/repay")
    paid = {"loan": "all", "amount": "1000.00", "key": hidden(repay, "key")}
    before = snapshot(ready)
    for data, field in (
        ({**paid, "key": paid["key"] + NUL}, "key"),
        ({**paid, "loan": "all" + NUL}, "loan"),
        ({**paid, "amount": "1000.00" + NUL}, "amount"),
    ):
        assert_refused(post(client, "/app/repay", repay, **data), field)
    assert snapshot(ready) == before and count(ready, repayment) == 0
    assert post(client, "/app/repay", repay, **paid).status_code == 200


def test_the_refusal_of_nul_reads_in_english_too(ready: Platform, client: TestClient) -> None:
    r = client.post("/app/login?lang=en", data={"channel": "wechat", "open_id": NUL})
    assert_refused(r, "open_id")
    assert 'lang="en"' in r.text and "Invalid input" in r.text


def test_a_form_that_fails_validation_answers_a_page(ready: Platform, client: TestClient) -> None:
    signed_in(ready, client, people(**CLEAN)[0])
    page = client.get("/app/onboarding")
    before = count(ready, metadata.tables["onboarding_step"])
    too_long = post(client, "/app/onboarding/identity", page, name="名" * 65, id_number="1")
    missing = post(client, "/app/consents", page, kind="credit_report")  # no action
    for r, field in ((too_long, "name"), (missing, "action")):
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
        assert "输入有误" in r.text and f"· {field}" in r.text
    assert client.get("/app/loans/0").status_code == 422  # an address no loan has
    assert count(ready, metadata.tables["onboarding_step"]) == before


def test_an_unknown_app_path_answers_a_page(client: TestClient) -> None:
    r = client.get("/app/nothing-here?lang=en")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "There is no such page" in r.text and 'href="/app"' in r.text
    assert "没有这个页面" in client.get("/app/nothing-here?lang=zh").text
    assert client.get("/v1/nothing-here").json()["code"] == "not_found"  # the API's own
