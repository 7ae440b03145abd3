"""The borrower's pages in a browser: a friend's share link, the demo login standing in for the
channel gateway, onboarding, the application, a draw confirmed after seeing its schedule and
rates, repayment to payoff; the elderly mode; axe-core on every page on the way."""

from __future__ import annotations

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from microloan.providers.simulated import SimulatedWorld
from microloan.service import borrower_view, invitations
from microloan.sim.person import Person
from microloan.store.schema import channel_identity

from .a11y import assert_accessible
from .server import LiveServer

CHANNEL = "wechat"


def a_sharing_customer(server: LiveServer) -> str:
    """The share code of a demo customer who has a line."""
    customers = borrower_view.personas(server.platform, CHANNEL)["customers"]
    with_line = [c for c in customers if c["limit"] is not None]
    assert with_line, customers
    return invitations.referral_code_of(server.platform, CHANNEL, with_line[0]["open_id"])


def a_good_friend(server: LiveServer) -> Person:
    """Someone of the demo population the platform does not know yet, with a clean record:
    no block list, no fraud ring, a likely payer (the population's hidden truth)."""
    p = server.platform
    with p.engine.connect() as conn:
        known = set(
            conn.execute(
                sa.select(channel_identity.c.open_id).where(channel_identity.c.channel == CHANNEL)
            ).scalars()
        )
    world = SimulatedWorld.load(p.settings.population_path)
    for person in world.people(CHANNEL):
        if (
            person.open_id(CHANNEL) not in known
            and not person.blocked
            and person.fraud_ring is None
            and person.pd_true < 0.02
            and 25 <= person.age_on(p.now().date()) <= 50
        ):
            return person
    raise AssertionError("no clean newcomer in the demo population")


def test_from_a_share_link_to_payoff(fresh_page: Page, fresh_live_server: LiveServer) -> None:
    page, server = fresh_page, fresh_live_server
    code = a_sharing_customer(server)
    friend = a_good_friend(server)
    open_id = friend.open_id(CHANNEL)
    assert open_id is not None

    page.goto(f"/r/{code}")
    expect(page.get_by_role("status")).to_contain_text("真:平台发出的正式邀请")
    assert_accessible(page)
    page.get_by_role("link", name="用此邀请码开通").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("演示登录")
    assert_accessible(page)
    page.get_by_label("渠道", exact=True).select_option(CHANNEL)
    page.get_by_label("渠道用户 open id").fill(open_id)
    page.get_by_role("button", name="登录", exact=True).click()

    expect(page.get_by_label("邀请码", exact=True)).to_have_value(
        code
    )  # carried from the share link
    assert_accessible(page)
    page.get_by_role("button", name="用邀请码进入").click()

    for step in ("实名认证", "手机号", "绑定银行卡"):
        expect(page.get_by_role("heading", name=step)).to_be_visible()
        assert_accessible(page)
        page.get_by_role("button", name="提交").click()  # the demo fills in the person's data
    page.get_by_label("查询征信授权").check()
    page.get_by_label("敏感个人信息处理授权").check()
    assert_accessible(page)
    page.get_by_role("button", name="同意").click()
    page.get_by_role("link", name="申请额度").click()
    assert_accessible(page)
    page.get_by_role("button", name="申请额度").click()

    expect(page.get_by_text("可借额度")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("link", name="借钱").click()
    page.get_by_label("借款金额(元)").fill("1000")
    page.get_by_label("借款期限").select_option("3")
    page.get_by_label("等额本息(每月还款额相同)").check()
    assert_accessible(page)
    page.get_by_role("button", name="查看还款计划").click()

    schedule = page.get_by_role("table")
    expect(schedule.get_by_role("row")).to_have_count(4)  # a header and three periods
    for label in ("日利率", "年利率(单利)", "年化利率(APR)", "总利息"):
        expect(page.get_by_text(label, exact=True)).to_be_visible()
    assert_accessible(page)
    page.get_by_label("我已阅读并同意《借款合同》").check()
    page.get_by_role("button", name="确认借款").click()

    expect(page.get_by_role("status")).to_contain_text("借款已受理")
    expect(page.get_by_text("还款中")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("navigation", name="我的借款导航").get_by_role("link", name="还款").click()
    expect(page.get_by_label("还款金额(元)")).to_have_value("1000.00")  # drawn today
    assert_accessible(page)
    page.get_by_role("button", name="确认还款").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("还款成功")
    assert_accessible(page)
    page.get_by_role("link", name="借款记录").click()
    expect(page.get_by_text("已结清")).to_be_visible()
    assert_accessible(page)


def test_elderly_mode_in_english(page: Page, live_server: LiveServer) -> None:
    customers = borrower_view.personas(live_server.platform, CHANNEL)["customers"]
    customer = next(c for c in customers if c["limit"] is not None)
    page.goto("/app/login?lang=en")
    page.get_by_role("button", name=f"Log in as {CHANNEL} {customer['open_id']}").click()
    expect(page.get_by_text("Available")).to_be_visible()
    standard_px = float(page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)"))
    page.get_by_role("link", name="Large text").click()
    expect(page.locator("body")).to_have_class("mode-elderly")
    elderly_px = float(page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)"))
    assert elderly_px > standard_px
    assert_accessible(page)
    page.get_by_role("link", name="Borrow").click()
    expect(page.get_by_label("Repayment method")).to_have_count(0)  # one method: no choice
    page.get_by_label("Amount (yuan)").fill("500")
    page.get_by_role("button", name="See the schedule").click()
    expect(page.get_by_role("columnheader", name="Interest")).to_have_count(0)  # simpler
    expect(page.get_by_role("columnheader", name="Total")).to_be_visible()
    assert_accessible(page)
