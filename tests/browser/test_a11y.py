"""The accessibility check itself: it finds what axe-core finds and says where."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from .a11y import assert_accessible, axe_violations


@pytest.fixture
def blank(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def test_a_page_with_violations_fails_naming_rule_impact_and_target(blank: Page) -> None:
    blank.set_content(
        '<html><title>t</title><main><input id="unlabelled">'
        '<p style="color:#bbb;background:#fff">faint</p></main></html>'
    )
    found = {v["id"] for v in axe_violations(blank)}
    assert {"html-has-lang", "label", "color-contrast"} <= found
    with pytest.raises(AssertionError) as failed:
        assert_accessible(blank)
    message = str(failed.value)
    assert "label (critical)" in message and "#unlabelled" in message


def test_a_clean_page_passes(blank: Page) -> None:
    blank.set_content(
        '<html lang="en"><title>t</title><main><label for="x">Name</label><input id="x">'
        "</main></html>"
    )
    assert_accessible(blank)
