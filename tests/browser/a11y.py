"""``assert_accessible(page)``: run axe-core on the page as it is now and fail listing every
WCAG 2 A/AA violation (rule id, impact, what it asks, and the CSS targets of the elements).

axe-core's script comes from the ``axe-playwright-python`` package (a dev dependency); nothing
from it is copied into the repository. Only the rules tagged with the WCAG 2.0/2.1/2.2 A and AA
levels run: axe's "best-practice" rules are advice, not the standard we hold the pages to.
"""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa")
_axe = Axe()


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page, as axe reports them."""
    options = {
        "runOnly": {"type": "tag", "values": list(WCAG_TAGS)},
        "resultTypes": ["violations"],
    }
    response: dict[str, Any] = _axe.run(page, options=options).response
    return list(response["violations"])


def describe(violations: list[dict[str, Any]]) -> str:
    """One line per violation, then one per element it was found on."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} — {v['helpUrl']}")
        for node in v["nodes"]:
            target = " ".join(str(t) for t in node["target"])
            summary = "; ".join(
                line.strip() for line in str(node.get("failureSummary", "")).splitlines()
            )
            lines.append(f"    {target} — {summary}")
    return "\n".join(lines)


def assert_accessible(page: Page) -> None:
    """Fail when axe-core finds a WCAG 2 A/AA violation on the page as it is now."""
    violations = axe_violations(page)
    assert not violations, (
        f"{len(violations)} accessibility violation(s) on {page.url}:\n{describe(violations)}"
    )
