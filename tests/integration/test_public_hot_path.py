"""The public hot path (``api/hotpath.py``): what it answers is byte for byte what the routes
answer, it counts every request against the public limit as they do, and everything it does
not know goes on to the application."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from microloan.api import pages
from microloan.api.app import create_app
from microloan.api.hotpath import PublicHotPath
from microloan.service import invitations
from microloan.service.platform import Platform

from .test_invitations import forge, inviter, p  # noqa: F401  (p: the fixture)


def _without_hot_path(p: Platform) -> FastAPI:  # noqa: F811
    app = create_app(p)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not PublicHotPath]
    return app


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    """Each test starts with no page or answer kept from another test's database."""
    pages._landing_pages.clear()
    invitations._issued.clear()


def _served(app: FastAPI) -> dict[str, int]:
    served: dict[str, int] = app.state.hot_path_served
    return dict(served)


def _same(a: Response, b: Response) -> None:
    assert a.status_code == b.status_code
    assert a.content == b.content
    assert a.headers.multi_items() == b.headers.multi_items()


def test_the_check_answers_as_the_route_does(p: Platform) -> None:  # noqa: F811
    _, code = inviter(p)
    app = create_app(p)
    client, plain = TestClient(app), TestClient(_without_hot_path(p))
    for text in (forge(code), "NOT-A-CODE", "1234", code.lower()):
        url = f"/v1/public/invitations/{text}"
        first, second, route = client.get(url), client.get(url), plain.get(url)
        _same(first, route)
        _same(second, route)
    # forged and malformed codes need no database: all six answered on the hot path; the
    # issued code was read from the database once, by the route, then confirmed from memory
    assert _served(app) == {"check": 7}
    assert first.json()["genuine"] is True and first.json()["channel"] == "wechat"


def test_a_landing_page_is_served_again_as_rendered(p: Platform) -> None:  # noqa: F811
    _, code = inviter(p)
    app = create_app(p)
    client, plain = TestClient(app), TestClient(_without_hot_path(p))

    def get(c: TestClient, url: str, cookies: dict[str, str]) -> Response:
        c.cookies.clear()  # only these: not what an earlier answer set
        c.cookies.update(cookies)
        return c.get(url)

    for query, cookies in (("", {}), ("?lang=en", {}), ("", {"lang": "en", "mode": "elderly"})):
        url = f"/r/{code}{query}"
        first = get(client, url, cookies)
        served = _served(app).get("landing", 0)
        second = get(client, url, cookies)
        assert _served(app).get("landing", 0) == served + 1
        _same(second, first)
        pages._landing_pages.clear()
        _same(get(plain, url, cookies), first)  # rendered afresh by the route: the same page
    client.cookies.clear()
    english = client.get(f"/r/{code}?lang=en")
    assert "A friend invited you" in english.text and "lang=en" in english.headers["set-cookie"]
    client.cookies.clear()
    client.cookies.update({"lang": "en"})
    assert "A friend invited you" in client.get(f"/r/{code}").text  # not the Chinese one kept
    client.cookies.clear()
    assert "好友邀请你开通" in client.get(f"/r/{code}").text


def test_the_hot_path_counts_against_the_public_limit(p: Platform) -> None:  # noqa: F811
    p.settings = p.settings.model_copy(update={"rate_limit_public": "4/minute"})
    _, code = inviter(p)
    app = create_app(p)
    client = TestClient(app)
    urls = [f"/v1/public/invitations/{code}", f"/r/{code}"] * 2 + ["/v1/public/invitations/X"]
    answers = [client.get(url) for url in urls]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429]
    assert _served(app) == {"check": 1, "landing": 1}  # the second of each
    assert answers[-1].json()["code"] == "rate.limited"
    assert client.get("/v1/public/invitations/X").status_code == 429  # refusals not counted


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/v1/public/invitations/" + "A" * 65, 422, "input.invalid"),
        ("/v1/public/invitations/AB%00CD", 422, "input.invalid"),
        ("/v1/public/invitations/AB/CD", 404, "not_found"),
    ],
)
def test_what_the_routes_refuse_goes_to_them(
    p: Platform,  # noqa: F811
    url: str,
    status: int,
    code: str,
) -> None:
    app = create_app(p)
    answer = TestClient(app).get(url)
    assert answer.status_code == status and answer.json()["code"] == code
    assert _served(app) == {}


def test_a_shared_rate_limit_store_is_left_to_the_routes(
    p: Platform,  # noqa: F811
    monkeypatch: Any,
) -> None:
    app = create_app(p)
    monkeypatch.setattr(type(app.state.limiter), "blocking", property(lambda self: True))
    client = TestClient(app)
    assert client.get("/v1/public/invitations/NOT-A-CODE").json()["genuine"] is False
    assert _served(app) == {}


def test_the_pages_kept_are_bounded_least_recently_served_first(
    p: Platform,  # noqa: F811
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(pages, "LANDING_PAGES_MAX", 2)
    client = TestClient(create_app(p))
    first, second, third = (f"/r/NOT-A-CODE-{i}" for i in range(3))
    for url in (first, second, first, third):  # the first served again: the second is dropped
        assert client.get(url).status_code == 200
    assert [key[0] for key in pages._landing_pages] == [first, third]
