"""The public pages in a browser: home, the invitation check, the referral landing, the language
switch and the elderly mode kept in cookies, keyboard use, and axe-core on every page in both
languages and both modes."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from microloan.service import invitations
from microloan.store.schema import invitation

from .a11y import axe_violations, describe
from .server import LiveServer

GENUINE_ZH = "真:平台发出的正式邀请"
FAKE_ZH = "假:不是平台发出的邀请"


def forge(code: str) -> str:
    """The code with its first character changed: another body under the same signature."""
    return ("1" if code[0] != "1" else "2") + code[1:]


@pytest.fixture(scope="module")
def genuine_code(live_server: LiveServer) -> str:
    """The invitation code of the demo's first white-listed WeChat user."""
    p = live_server.platform
    with p.engine.connect() as conn:
        open_id = conn.execute(
            sa.select(invitation.c.open_id)
            .where(invitation.c.channel == "wechat", invitation.c.kind == "whitelist")
            .order_by(invitation.c.invitation_id)
            .limit(1)
        ).scalar_one()
    return invitations.referral_code_of(p, "wechat", str(open_id))


def body_font_size_px(page: Page) -> float:
    size = page.evaluate("getComputedStyle(document.body).fontSize")
    assert size.endswith("px"), size
    return float(size.removesuffix("px"))


def test_the_home_page_leads_to_the_check(page: Page) -> None:
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", level=1)).to_have_text("欢迎")
    page.get_by_role("link", name="邀请码验真").click()
    expect(page).to_have_url("/check")
    expect(page.get_by_role("heading", level=1)).to_have_text("邀请码验真")


def test_a_genuine_code_is_confirmed(page: Page, genuine_code: str) -> None:
    page.goto("/check")
    page.get_by_label("邀请码").fill(genuine_code)
    page.get_by_role("button", name="验证").click()
    verdict = page.get_by_role("status")
    expect(verdict).to_contain_text(GENUINE_ZH)
    expect(verdict).to_contain_text(genuine_code)
    expect(page.get_by_label("邀请码")).to_have_value(genuine_code)


def test_a_forged_code_is_not_genuine_in_either_language(page: Page, genuine_code: str) -> None:
    forged = forge(genuine_code)
    page.goto(f"/check?code={forged}")
    expect(page.get_by_role("status")).to_contain_text(FAKE_ZH)
    page.goto(f"/check?code={forged}&lang=en")
    verdict = page.get_by_role("status")
    expect(verdict).to_contain_text("NOT genuine")
    expect(verdict).not_to_contain_text(GENUINE_ZH)


def test_the_referral_landing_names_the_channel_of_a_genuine_code(
    page: Page, genuine_code: str
) -> None:
    page.goto(f"/r/{genuine_code}")
    expect(page.get_by_role("heading", level=1)).to_have_text("好友邀请你开通")
    expect(page.get_by_role("status")).to_contain_text(GENUINE_ZH)
    expect(page.locator("main")).to_contain_text("渠道: wechat")
    page.goto(f"/r/{forge(genuine_code)}")
    expect(page.get_by_role("status")).to_contain_text(FAKE_ZH)
    expect(page.locator("main")).not_to_contain_text("渠道")


def test_english_is_kept_on_the_next_page_and_switched_back(page: Page) -> None:
    page.goto("/?lang=en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome")
    page.get_by_role("link", name="Is this invitation official?").click()
    expect(page).to_have_url("/check")  # no ?lang=: the cookie carries it
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("button", name="Check")).to_be_visible()
    page.get_by_role("link", name="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("欢迎")


def test_elderly_mode_enlarges_the_text_and_is_kept(page: Page) -> None:
    page.goto("/")
    expect(page.locator("body")).to_have_class("mode-standard")
    standard_px = body_font_size_px(page)
    page.get_by_role("link", name="长辈模式").click()
    expect(page.locator("body")).to_have_class("mode-elderly")
    assert body_font_size_px(page) > standard_px
    page.goto("/check")  # the cookie keeps the mode
    expect(page.locator("body")).to_have_class("mode-elderly")
    assert body_font_size_px(page) > standard_px
    page.goto("/?mode=standard")
    assert body_font_size_px(page) == standard_px


def test_the_keyboard_reaches_the_skip_link_first_then_the_form(
    page: Page, genuine_code: str
) -> None:
    page.goto("/check")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="跳到正文")
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    assert box is not None and box["x"] >= 0 and box["y"] >= 0, "the focused skip link is visible"
    page.keyboard.press("Enter")  # skips the header: the next Tab lands in the main content
    page.keyboard.press("Tab")
    expect(page.get_by_label("邀请码")).to_be_focused()
    page.keyboard.type(genuine_code)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="验证")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text(GENUINE_ZH)


PAGES = (
    "/",
    "/check",
    "/check?code={genuine}",
    "/check?code={forged}",
    "/r/{genuine}",
    "/r/{forged}",
)


@pytest.mark.parametrize("path", PAGES)
def test_every_public_page_passes_axe_in_both_languages_and_modes(
    page: Page, genuine_code: str, path: str
) -> None:
    url = path.format(genuine=genuine_code, forged=forge(genuine_code))
    failures = []
    for lang, mode in itertools.product(("zh", "en"), ("standard", "elderly")):
        page.goto(f"{url}{'&' if '?' in url else '?'}lang={lang}&mode={mode}")
        expect(page.locator("body")).to_have_class(f"mode-{mode}")
        violations = axe_violations(page)
        if violations:
            failures.append(f"{page.url}:\n{describe(violations)}")
    assert not failures, "accessibility violations:\n" + "\n".join(failures)


@pytest.mark.parametrize("path", ["/", "/check?code={genuine}", "/r/{forged}"])
def test_pages_reflow_at_320_css_pixels_without_sideways_scrolling(
    page: Page, genuine_code: str, path: str
) -> None:
    """WCAG 1.4.10 (which axe cannot check): a phone's narrowest width, in large text too."""
    page.set_viewport_size({"width": 320, "height": 640})
    url = path.format(genuine=genuine_code, forged=forge(genuine_code))
    wide = []
    for lang, mode in itertools.product(("zh", "en"), ("standard", "elderly")):
        page.goto(f"{url}{'&' if '?' in url else '?'}lang={lang}&mode={mode}")
        scroll_px, client_px = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        if scroll_px > client_px:
            wide.append(f"{page.url}: {scroll_px}px wide in {client_px}px")
    assert not wide, "\n".join(wide)
