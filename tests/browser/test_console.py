"""The operator console in a browser: the demo's application held for manual review by a real
decision (a rooted phone), an analyst logging in, finding it in the queue and approving it, the line
granted; and axe-core on every console page the demo administrator sees."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from microloan.service import borrower_view, reviews
from microloan.service.demo_access import DEMO_PASSWORD

from .a11y import assert_accessible
from .server import LiveServer


def held_for_review(server: LiveServer) -> int:
    """The demo's application held for a person by a real decision (a rooted phone)."""
    cases = reviews.review_queue(server.platform)
    assert len(cases) == 1, cases
    return int(cases[0]["customer_id"])


def log_in(page: Page, username: str) -> None:
    page.goto("/console")
    expect(page.get_by_role("heading", level=1)).to_have_text("运营后台登录")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="登录").click()


def test_an_analyst_approves_a_manual_review(
    fresh_page: Page, fresh_live_server: LiveServer
) -> None:
    page, p = fresh_page, fresh_live_server.platform
    cid = held_for_review(fresh_live_server)
    log_in(page, "risk_checker")
    assert_accessible(page)
    page.get_by_role("navigation").get_by_role("link", name="人工审核").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("人工审核")
    assert_accessible(page)

    form = page.locator("form.decision").filter(has_text=f"#{cid})")
    form.get_by_label("批准").check()
    form.get_by_label("备注").fill("手机已确认 phone confirmed by a call")
    form.get_by_role("button", name="提交决定").click()

    expect(page.get_by_role("status")).to_contain_text("已批准审核案件")
    assert_accessible(page)
    with p.engine.connect() as conn:
        application = borrower_view.latest_application(conn, cid)
    assert application is not None and application["review_status"] == "approved"
    page.goto(f"/console/customers/{cid}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(str(cid))
    assert_accessible(page)


CONSOLE_PAGES = (
    "/console",
    "/console/customers?q=1",
    "/console/customers/1",
    "/console/reviews",
    "/console/proposals",
    "/console/write-offs",
    "/console/eod",
    "/console/portfolio",
    "/console/audit",
    "/console/operators",
)


def test_every_console_page_is_accessible(page: Page) -> None:
    log_in(page, "demo_admin")
    for path in CONSOLE_PAGES:
        for query in ("", "lang=en"):
            sep = "&" if "?" in path else "?"
            page.goto(f"{path}{sep}{query}" if query else path)
            expect(page.locator("main h1")).to_be_visible()
            assert_accessible(page)
