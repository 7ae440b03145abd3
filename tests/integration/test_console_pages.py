"""The operator console's pages: login, cookies and CSRF, the role of every page, masked
personal data, manual review and maker-checker through the forms, the portfolio's charts and
the structure every page must have; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import date
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from microloan.api.app import create_app
from microloan.api.console_text import TEXT
from microloan.domain.rates import DailyRate
from microloan.service import eod, eod_reports, lending, operators
from microloan.service.platform import Platform
from microloan.store.schema import audit_log, credit_line, decision, review_case

from .decision_support import PASSWORD, onboard, open_review_case, people
from .support import EI, draw, new_customer, set_date

CONSOLE = "/console"


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform)) as c:
        yield c


def add_operator(p: Platform, username: str, *roles: str) -> None:
    operators.create_operator(p, username, PASSWORD, list(roles))


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def log_in(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; the session's CSRF token (from the home page)."""
    form = client.get(f"{CONSOLE}/login")
    assert form.status_code == 200
    r = client.post(
        f"{CONSOLE}/login",
        data={"username": username, "password": password, "csrf": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    home = client.get(CONSOLE)
    assert home.status_code == 200
    return csrf_of(home.text)


def actions(p: Platform) -> list[str]:
    with p.engine.connect() as conn:
        return list(
            conn.execute(sa.select(audit_log.c.action).order_by(audit_log.c.audit_id)).scalars()
        )


class _Page(HTMLParser):
    """What the structure check needs of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.html_lang = ""
        self.ids: list[str] = []
        self.labelled: set[str] = set()
        self.fields: list[str] = []
        self.th_without_scope = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags[tag] += 1
        if tag == "html":
            self.html_lang = a.get("lang") or ""
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "label" and a.get("for"):
            self.labelled.add(str(a["for"]))
        if tag == "select" or (
            tag == "input" and a.get("type") not in ("hidden", "submit", "button")
        ):
            self.fields.append(str(a.get("id")))
        if tag == "th" and not a.get("scope"):
            self.th_without_scope += 1


def check_page(html: str) -> _Page:
    """Landmarks, a heading, the language, labels for every field, captions and scoped headers
    in every table, ids unique (the inline charts' too)."""
    page = _Page()
    page.feed(html)
    assert page.html_lang in ("zh-CN", "en")
    assert page.tags["main"] == 1 and page.tags["h1"] >= 1
    assert page.tags["header"] == 1 and page.tags["footer"] == 1
    unlabelled = [f for f in page.fields if f not in page.labelled]
    assert not unlabelled, f"fields without a label: {unlabelled}"
    assert page.tags["caption"] == page.tags["table"]
    assert page.th_without_scope == 0
    duplicated = [i for i, n in Counter(page.ids).items() if n > 1]
    assert not duplicated, f"ids used twice: {duplicated[:5]}"
    return page


def test_the_strings_have_both_languages() -> None:
    assert set(TEXT["zh"]) == set(TEXT["en"])
    assert all(TEXT["zh"].values()) and all(TEXT["en"].values())


# -- login, logout, cookies and CSRF ---------------------------------------------------------------


def test_login_logout_and_redirects(platform: Platform, client: TestClient) -> None:
    add_operator(platform, "alice", "risk_analyst", "finance")
    r = client.get(f"{CONSOLE}/reviews?status=open", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"{CONSOLE}/login?next=/console/reviews%3Fstatus%3Dopen"
    form = client.get(r.headers["location"])
    check_page(form.text)
    assert 'value="/console/reviews?status=open"' in form.text
    login_cookie = form.headers["set-cookie"].lower()
    assert "httponly" in login_cookie and "samesite=strict" in login_cookie

    r = client.post(
        f"{CONSOLE}/login",
        data={
            "username": "alice",
            "password": PASSWORD,
            "csrf": csrf_of(form.text),
            "next": "/console/reviews?status=open",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/reviews?status=open"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("console_session="))
    low = cookie.lower()
    assert "httponly" in low and "samesite=strict" in low and "path=/console" in low
    assert "secure" not in low  # plain http here; https below
    home = client.get(CONSOLE)
    page = check_page(home.text)
    assert home.headers["cache-control"] == "no-store"
    assert home.headers["x-frame-options"] == "DENY"
    assert "alice" in home.text and page.tags["nav"] == 2
    assert "/console/portfolio" in home.text and "/console/audit" not in home.text

    r = client.post(f"{CONSOLE}/logout", data={"csrf": csrf_of(home.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{CONSOLE}/login?done=logout"
    assert client.get(CONSOLE, follow_redirects=False).status_code == 303
    assert actions(platform)[-2:] == ["operator.login", "operator.logout"]


def test_the_session_cookie_is_secure_on_https(platform: Platform) -> None:
    add_operator(platform, "bob", "auditor")
    with TestClient(create_app(platform), base_url="https://testserver") as client:
        form = client.get(f"{CONSOLE}/login")
        r = client.post(
            f"{CONSOLE}/login",
            data={"username": "bob", "password": PASSWORD, "csrf": csrf_of(form.text)},
            follow_redirects=False,
        )
        cookie = next(c for c in r.headers.get_list("set-cookie") if "console_session=" in c)
        assert "secure" in cookie.lower()


def test_an_offsite_next_is_ignored(platform: Platform, client: TestClient) -> None:
    add_operator(platform, "carol", "finance")
    for target in ("https://evil.example/", "//evil.example", "/console//evil", "/other"):
        form = client.get(f"{CONSOLE}/login", params={"next": target})
        r = client.post(
            f"{CONSOLE}/login",
            data={"username": "carol", "password": PASSWORD, "csrf": csrf_of(form.text)},
            follow_redirects=False,
        )
        assert r.headers["location"] == CONSOLE, target


def test_wrong_passwords_are_shown_audited_and_rate_limited(platform: Platform) -> None:
    platform.settings = platform.settings.model_copy(
        update={"rate_limit_operator_login": "2/minute"}
    )
    add_operator(platform, "dave", "finance")
    with TestClient(create_app(platform)) as client:
        token = csrf_of(client.get(f"{CONSOLE}/login").text)
        for _ in range(2):
            r = client.post(
                f"{CONSOLE}/login",
                data={"username": "dave", "password": "wrong-pass-1", "csrf": token},
            )
            assert r.status_code == 401
            check_page(r.text)
            assert 'role="alert"' in r.text and "operator.unauthorised" in r.text
            assert 'value="dave"' in r.text and "wrong-pass-1" not in r.text
        r = client.post(
            f"{CONSOLE}/login", data={"username": "dave", "password": PASSWORD, "csrf": token}
        )
        assert r.status_code == 429 and "rate.limited" in r.text
        assert int(r.headers["retry-after"]) >= 1
        assert "console_session" not in client.cookies
    assert actions(platform).count("operator.login.failed") == 2


def test_forms_without_a_valid_csrf_token_are_refused(
    platform: Platform, client: TestClient
) -> None:
    add_operator(platform, "erin", "risk_analyst")
    # the login form's token belongs to its cookie
    r = client.post(
        f"{CONSOLE}/login", data={"username": "erin", "password": PASSWORD, "csrf": "0" * 64}
    )
    assert r.status_code == 403 and "console.csrf" in r.text
    check_page(r.text)
    assert "operator.login" not in actions(platform)

    token = log_in(client, "erin")
    for data in ({}, {"csrf": "0" * 64}, {"csrf": token[:-1] + "x"}):
        r = client.post(f"{CONSOLE}/logout", data=data, follow_redirects=False)
        assert r.status_code == 403, data
        assert 'role="alert"' in r.text and "console.csrf" in r.text
    cid = new_customer(platform)
    proposal = {"kind": "line.change", "customer_id": str(cid), "limit": "30000", "reason": "x"}
    assert client.post(f"{CONSOLE}/proposals", data=proposal).status_code == 403
    assert client.get(CONSOLE).status_code == 200  # still logged in
    assert "line.change.propose" not in actions(platform)
    # another operator's token does not fit this session
    add_operator(platform, "frank", "risk_analyst")
    with TestClient(client.app) as other:
        foreign = log_in(other, "frank")
    assert client.post(f"{CONSOLE}/logout", data={"csrf": foreign}).status_code == 403


# -- who may see what ------------------------------------------------------------------------------

ALL = frozenset(operators.ROLES)
CUSTOMER = frozenset(
    {"customer_service", "collections", "risk_analyst", "auditor", "administrator"}
)
REVIEWS = frozenset({"risk_analyst", "auditor", "administrator"})
CHECKERS = frozenset({"risk_analyst", "finance", "collections", "administrator", "auditor"})
WRITE_OFF = frozenset({"finance", "collections", "auditor", "administrator"})
REPORTS = frozenset({"finance", "risk_analyst", "auditor", "administrator"})
AUDITORS = frozenset({"auditor", "administrator"})

# (path, roles allowed, status when allowed); {cid} is a customer that exists
PAGES: list[tuple[str, frozenset[str], int]] = [
    ("", ALL, 200),
    ("/customers", CUSTOMER, 200),
    ("/customers?q=张", CUSTOMER, 200),
    ("/customers/{cid}", CUSTOMER, 200),
    ("/loans/999", CUSTOMER, 404),
    ("/reviews", REVIEWS, 200),
    ("/reviews?status=declined", REVIEWS, 200),
    ("/proposals", CHECKERS, 200),
    ("/proposals?status=all", CHECKERS, 200),
    ("/write-offs", WRITE_OFF, 200),
    ("/eod", REPORTS, 200),
    ("/portfolio", REPORTS, 404),  # nothing closed yet: the page says so
    ("/audit", AUDITORS, 200),
    ("/operators", AUDITORS, 200),
]


@pytest.mark.parametrize("role", operators.ROLES)
def test_every_page_by_role(platform: Platform, client: TestClient, role: str) -> None:
    cid = new_customer(platform, name="张伟")
    add_operator(platform, "someone", role)
    log_in(client, "someone")
    wrong = []
    for path, allowed, status in PAGES:
        r = client.get(CONSOLE + path.format(cid=cid), follow_redirects=False)
        expected = status if role in allowed else 403
        if r.status_code != expected:
            wrong.append(f"{path}: {r.status_code} (expected {expected})")
            continue
        assert r.headers["content-type"].startswith("text/html"), path
        check_page(r.text)
        if expected >= 400:
            assert 'role="alert"' in r.text, path
        if expected == 403:
            assert "operator.forbidden" in r.text
    assert not wrong, "\n".join(wrong)
    denied = sum(1 for _, allowed, _ in PAGES if role not in allowed)
    assert actions(platform).count("access.denied") == denied
    menu = client.get(CONSOLE).text
    for path, allowed, _ in PAGES[1:]:
        if "?" not in path and "{" not in path and "/loans" not in path:
            assert (f'href="{CONSOLE}{path}"' in menu) == (role in allowed), path


def test_every_page_in_english(platform: Platform, client: TestClient) -> None:
    add_operator(platform, "root", "administrator")
    log_in(client, "root")
    cid = new_customer(platform)
    for path in ("", "/customers", f"/customers/{cid}", "/reviews", "/proposals", "/audit"):
        r = client.get(f"{CONSOLE}{path}", params={"lang": "en"})
        assert r.status_code == 200
        assert check_page(r.text).html_lang == "en"
        assert "运营后台" not in r.text
    invalid = client.get(f"{CONSOLE}/customers/abc")
    assert invalid.status_code == 422 and "input.invalid" in invalid.text
    check_page(invalid.text)


def test_text_holding_nul_is_refused_before_it_reaches_the_database(
    platform: Platform, client: TestClient
) -> None:
    add_operator(platform, "root", "administrator")
    form = client.get(f"{CONSOLE}/login")
    r = client.post(
        f"{CONSOLE}/login",
        data={"username": "ro\x00ot", "password": PASSWORD, "csrf": csrf_of(form.text)},
    )
    assert r.status_code == 422 and "username" in r.text
    token = log_in(client, "root")
    r = client.get(f"{CONSOLE}/customers", params={"q": "张\x00"})
    assert r.status_code == 422 and 'role="alert"' in r.text
    cid = new_customer(platform)
    change = {"kind": "line.change", "customer_id": str(cid), "limit": "30000"}
    r = client.post(f"{CONSOLE}/proposals", data={**change, "reason": "a\x00", "csrf": token})
    assert r.status_code == 422 and "reason" in r.text
    assert "line.change.propose" not in actions(platform)


def test_an_unknown_console_path_answers_a_console_page(
    platform: Platform, client: TestClient
) -> None:
    for method, path in (("GET", "/nothing-here"), ("POST", "/nowhere"), ("GET", "/eod/x/y")):
        r = client.request(method, f"{CONSOLE}{path}", follow_redirects=False)
        assert r.status_code == 404, (method, path, r.text[:200])
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["cache-control"] == "no-store"
        check_page(r.text)
        html = r.text
        assert "<h1>未找到</h1>" in html and TEXT["zh"]["err_console_not_found"] in html
        assert "console.not_found" in html and 'role="alert"' in html
        assert f'<a href="{CONSOLE}">{TEXT["zh"]["back_home"]}</a>' in html
    english = client.get(f"{CONSOLE}/nothing-here", params={"lang": "en"})
    assert english.status_code == 404 and check_page(english.text).html_lang == "en"
    assert "<h1>Not found</h1>" in english.text
    assert TEXT["en"]["err_console_not_found"] in english.text
    add_operator(platform, "root", "administrator")
    log_in(client, "root")
    signed_in = client.get(f"{CONSOLE}/customers/1/nothing")
    assert signed_in.status_code == 404 and "console.not_found" in signed_in.text
    # what the router answers otherwise is kept: a known path's other method, other prefixes
    assert client.get(f"{CONSOLE}/logout").status_code == 405
    for elsewhere in ("/v1/nothing", "/consoles"):
        r = client.get(elsewhere)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


# -- customers, reviews and masking --------------------------------------------------------------


def test_search_and_360_show_masked_data_only(platform: Platform, client: TestClient) -> None:
    person = people(blocked=False, ring=False, shared_device=False)[0]
    cid = onboard(platform, person)
    open_review_case(platform, cid, person.primary_channel)
    add_operator(platform, "service", "customer_service")
    log_in(client, "service")
    secrets_ = [person.id_number, person.phone, person.card_number]
    if len(person.name) > 1:
        secrets_.append(person.name)

    pages = []
    for q in (str(cid), person.phone[-4:], person.name[:1]):
        r = client.get(f"{CONSOLE}/customers", params={"q": q})
        assert r.status_code == 200
        check_page(r.text)
        assert f'href="/console/customers/{cid}"' in r.text, q
        pages.append(r.text)
    view = client.get(f"{CONSOLE}/customers/{cid}")
    assert view.status_code == 200
    check_page(view.text)
    assert "fraud.device.shared" in view.text and "<code>" in view.text
    pages.append(view.text)
    for text in pages:
        for secret in secrets_:
            assert secret not in text
    assert actions(platform).count("customer.search") == 3
    assert actions(platform)[-1] == "customer.view"


def test_a_manual_review_decided_through_the_form(platform: Platform, client: TestClient) -> None:
    person = people(blocked=False, ring=False, shared_device=False)[0]
    cid = onboard(platform, person)
    case_id = open_review_case(platform, cid, person.primary_channel)
    add_operator(platform, "analyst", "risk_analyst")
    add_operator(platform, "auditor", "auditor")

    with TestClient(client.app) as auditor:
        token = log_in(auditor, "auditor")
        queue = auditor.get(f"{CONSOLE}/reviews")
        assert f"#{case_id}" in queue.text and "/decision" not in queue.text
        r = auditor.post(
            f"{CONSOLE}/reviews/{case_id}/decision", data={"csrf": token, "decision": "approve"}
        )
        assert r.status_code == 403 and "operator.forbidden" in r.text

    token = log_in(client, "analyst")
    queue = client.get(f"{CONSOLE}/reviews")
    check_page(queue.text)
    assert f'action="/console/reviews/{case_id}/decision"' in queue.text
    assert person.id_number not in queue.text
    r = client.post(
        f"{CONSOLE}/reviews/{case_id}/decision",
        data={"csrf": token, "decision": "approve", "note": "checked by phone"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"{CONSOLE}/reviews?done=review.approved&id={case_id}"
    done = client.get(r.headers["location"])
    assert 'role="status"' in done.text and f"#{case_id}" in done.text
    with platform.engine.connect() as conn:
        case = conn.execute(sa.select(review_case)).one()
        limit = conn.execute(
            sa.select(credit_line.c.limit_fen).where(credit_line.c.customer_id == cid)
        ).scalar_one()
    assert (case.status, case.note, limit) == ("approved", "checked by phone", 500_000)

    again = client.post(
        f"{CONSOLE}/reviews/{case_id}/decision", data={"csrf": token, "decision": "decline"}
    )
    assert again.status_code == 409 and "review.decided" in again.text
    check_page(again.text)
    bad = client.post(
        f"{CONSOLE}/reviews/{case_id}/decision", data={"csrf": token, "decision": "maybe"}
    )
    assert bad.status_code == 422 and 'role="alert"' in bad.text
    assert "review.approved" in actions(platform)


# -- maker-checker ---------------------------------------------------------------------------------


def test_maker_checker_through_the_forms(platform: Platform, client: TestClient) -> None:
    add_operator(platform, "maker", "risk_analyst")
    add_operator(platform, "checker", "risk_analyst")
    add_operator(platform, "cashier", "finance")
    cid = lending.create_customer(platform, "王芳")
    lending.grant_line(platform, cid, 1_000_000, DailyRate.parse("0.0005"))
    maker = log_in(client, "maker")

    page = client.get(f"{CONSOLE}/proposals", params={"customer_id": cid})
    check_page(page.text)
    assert f'name="customer_id" inputmode="numeric" pattern="[0-9]+" value="{cid}"' in page.text
    assert 'value="loan.write_off"' not in page.text  # a risk analyst proposes no write-off
    change = {"kind": "line.change", "customer_id": str(cid), "limit": "30000", "reason": "ok"}
    r = client.post(f"{CONSOLE}/proposals", data={**change, "csrf": maker}, follow_redirects=False)
    assert r.status_code == 303, r.text
    pid = int(r.headers["location"].rsplit("=", 1)[1])
    listed = client.get(r.headers["location"])
    assert 'role="status"' in listed.text and f"/console/proposals/{pid}/approve" in listed.text
    assert TEXT["zh"]["own_proposal"] in listed.text

    refused = client.post(f"{CONSOLE}/proposals/{pid}/approve", data={"csrf": maker})
    assert refused.status_code == 403 and "proposal.same_operator" in refused.text
    assert TEXT["zh"]["err_proposal_same_operator"] in refused.text
    check_page(refused.text)
    bad = client.post(f"{CONSOLE}/proposals", data={**change, "limit": "-5", "csrf": maker})
    assert bad.status_code == 422 and "limit" in bad.text
    write_off = {"kind": "loan.write_off", "loan_id": "1", "reason": "dpd", "csrf": maker}
    assert client.post(f"{CONSOLE}/proposals", data=write_off).status_code == 403

    with TestClient(client.app) as other:
        cashier = log_in(other, "cashier")
        r = other.post(f"{CONSOLE}/proposals/{pid}/approve", data={"csrf": cashier})
        assert r.status_code == 403 and "operator.forbidden" in r.text
        checker = log_in(other, "checker")
        r = other.post(
            f"{CONSOLE}/proposals/{pid}/approve",
            data={"csrf": checker, "note": "agreed"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert r.headers["location"] == f"{CONSOLE}/proposals?done=approved&id={pid}"
        again = other.post(f"{CONSOLE}/proposals/{pid}/reject", data={"csrf": checker})
        assert again.status_code == 409 and "proposal.decided" in again.text
        freeze = {"kind": "line.change", "customer_id": str(cid), "event": "freeze"}
        r = other.post(
            f"{CONSOLE}/proposals",
            data={**freeze, "reason": "fraud", "csrf": checker},
            follow_redirects=False,
        )
        fid = int(r.headers["location"].rsplit("=", 1)[1])

    r = client.post(f"{CONSOLE}/proposals/{fid}/reject", data={"csrf": maker})
    assert r.status_code == 200 and 'role="status"' in r.text  # followed to the list
    view = client.get(f"{CONSOLE}/customers/{cid}")
    assert "¥30,000.00" in view.text
    rejected = client.get(f"{CONSOLE}/proposals", params={"status": "rejected"})
    assert f"#{fid}" in rejected.text and f"#{pid}</th>" not in rejected.text
    log = actions(platform)
    for action in ("line.change.propose", "line.change.approve", "line.change.reject"):
        assert action in log
    assert log.count("access.denied") == 3  # same operator, finance, write-off by an analyst


# -- reports ---------------------------------------------------------------------------------------


def _decisions(p: Platform, cid: int, rows: list[tuple[date, str]], *, kind: str = "apply") -> None:
    with p.engine.begin() as conn:
        for on, outcome in rows:
            conn.execute(
                decision.insert(),
                {
                    "customer_id": cid,
                    "channel": "wechat",
                    "kind": kind,
                    "outcome": outcome,
                    "reasons": "[]",
                    "record": "{}",
                    "business_date": on,
                    "created_at": p.now(),
                },
            )


def test_the_portfolio_page_draws_charts(platform: Platform, client: TestClient) -> None:
    set_date(platform, date(2026, 1, 31))
    cid = new_customer(platform)
    draw(platform, cid, "10000", 12, EI)
    set_date(platform, date(2026, 2, 4))
    eod.run_eod(platform)
    _decisions(
        platform,
        cid,
        [(date(2026, 2, 1), "approved"), (date(2026, 2, 1), "declined")]
        + [(date(2026, 2, 2), "approved")] * 3,
    )
    add_operator(platform, "cfo", "finance")
    log_in(client, "cfo")

    r = client.get(f"{CONSOLE}/portfolio")
    assert r.status_code == 200
    page = check_page(r.text)
    assert page.tags["svg"] == 5 and r.text.count('role="img"') == 5
    for key in ("balance", "allowance", "npl", "coverage", "decisions"):
        assert f'aria-labelledby="chart-{key}-title"' in r.text
        assert f'<title id="chart-{key}-title">{TEXT["zh"][f"chart_{key}"]}</title>' in r.text
    assert "2026-02-03" in r.text and "¥10,000.00" in r.text
    assert page.tags["table"] == 3
    assert actions(platform)[-1] == "portfolio.view"

    english = client.get(f"{CONSOLE}/portfolio", params={"lang": "en", "date": "2026-02-02"})
    assert english.status_code == 200
    assert f'<title id="chart-npl-title">{TEXT["en"]["chart_npl"]}</title>' in english.text
    missing = client.get(f"{CONSOLE}/portfolio", params={"date": "2020-01-01"})
    assert missing.status_code == 404 and "portfolio.no_figures" in missing.text
    check_page(missing.text)
    eod_page = client.get(f"{CONSOLE}/eod")
    assert eod_page.status_code == 200 and "2026-02-03" in eod_page.text


def test_decisions_by_day_counts_the_last_dates_with_applications(platform: Platform) -> None:
    cid = new_customer(platform)
    assert eod_reports.decisions_by_day(platform, days=2) == []
    feb = [date(2026, 2, d) for d in range(1, 5)]
    _decisions(
        platform,
        cid,
        [(feb[0], "approved"), (feb[2], "declined"), (feb[2], "review")]
        + [(feb[3], "approved")] * 2,
    )
    _decisions(platform, cid, [(feb[3], "declined"), (feb[1], "review")], kind="rescore")
    zero = dict.fromkeys(("approved", "declined", "review"), 0)
    assert eod_reports.decisions_by_day(platform, days=2) == [
        ("2026-02-03", {**zero, "declined": 1, "review": 1}),
        ("2026-02-04", {**zero, "approved": 2}),
    ]
    every = eod_reports.decisions_by_day(platform, days=eod_reports.MAX_DECISION_DAYS)
    assert [on for on, _ in every] == ["2026-02-01", "2026-02-03", "2026-02-04"]  # rescores not
    with pytest.raises(AssertionError):
        eod_reports.decisions_by_day(platform, days=eod_reports.MAX_DECISION_DAYS + 1)


def test_the_audit_page_filters_and_pages(platform: Platform, client: TestClient) -> None:
    add_operator(platform, "root", "administrator")
    log_in(client, "root")
    for _ in range(3):
        client.get(f"{CONSOLE}/eod")
    r = client.get(f"{CONSOLE}/audit", params={"action": "eod.view", "limit": 2})
    assert r.status_code == 200
    check_page(r.text)
    rows = re.findall(r"<code>(eod\.view|audit\.view)</code>", r.text)
    assert rows == ["eod.view", "eod.view"]
    older = re.search(r'href="(/console/audit\?[^"]+before_id=\d+)"', r.text)
    assert older
    r = client.get(older.group(1).replace("&amp;", "&"))
    assert re.findall(r"<code>(eod\.view)</code>", r.text) == ["eod.view"]
    assert "operators" in client.get(f"{CONSOLE}/operators").text
