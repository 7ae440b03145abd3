"""The application: ``create_app(platform)`` builds the FastAPI app with every router, the
problem+json error handlers and the rate limiter; ``microloan serve`` runs it under uvicorn;
``microloan serve --workers N`` runs N processes, each building its own (``app_from_settings``)."""

from __future__ import annotations

import gc
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from microloan.api import account, borrower, console, operator, pages, problems, public
from microloan.api.borrower_hotpath import BorrowerHotPath
from microloan.api.hotpath import PublicHotPath
from microloan.api.problems import PROBLEM_RESPONSES
from microloan.api.ratelimit import RateLimiter
from microloan.service.platform import Platform

DESCRIPTION = """微粒贷式循环小额信贷平台 An online revolving micro-credit platform.

* **借款人 Borrowers** call through their channel's gateway, which signs every request
  (HMAC-SHA256 with the channel's secret over method, path, timestamp, nonce, open id and body).
* **运营 Operators** log in for a bearer token; roles decide what each may do.
* **公开 Public**: the invitation check and the referral landing page.

Errors are `application/problem+json` with a stable `code` and the `field` concerned.
Money-moving endpoints take an `Idempotency-Key` header.
"""


BORROWER_PREFIX = "/v1"


def create_app(p: Platform | None = None, *, borrower_hot_path: bool = True) -> FastAPI:
    """The app on ``p`` (by default the platform the settings name). ``borrower_hot_path``
    False leaves every borrower request to the routes (the tests compare the two)."""
    platform = p if p is not None else Platform.connect()
    app = FastAPI(
        title="microloan",
        version=version("microloan"),
        description=DESCRIPTION,
        responses=PROBLEM_RESPONSES,
    )
    app.state.platform = platform
    app.state.limiter = RateLimiter(platform.settings.rate_limit_storage)
    problems.install(app)
    account.install(app)

    @app.get("/healthz", tags=["public"], summary="存活 Liveness")
    def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    app.include_router(public.router, prefix="/v1/public", tags=["public"])
    app.include_router(borrower.router, prefix=BORROWER_PREFIX, tags=["borrower"])
    app.include_router(operator.router, prefix="/v1/operator", tags=["operator"])
    app.mount("/static", StaticFiles(directory=pages.HERE / "static"), name="static")
    app.include_router(pages.router)
    app.include_router(account.router, prefix="/app")
    app.include_router(console.router, prefix="/console")
    app.state.hot_path_served = {}
    app.add_middleware(PublicHotPath)  # the public check and landing at viral load
    if borrower_hot_path:  # the borrower API's plainly valid requests, without the routing
        app.add_middleware(BorrowerHotPath, routes=borrower.router.routes, prefix=BORROWER_PREFIX)
    return app


# connections kept open by each server process (as many again at peaks). A worker serves its
# share of the concurrent requests in its thread pool, each holding a connection; with the
# engine's default of 5 the pool overflowed under load, and every overflow connection was
# closed on return and opened again: a new PostgreSQL backend each time (about 10 a second).
SERVER_POOL_SIZE = 16


def app_from_settings() -> FastAPI:
    """The app of one server process, on the platform the settings name (``MICROLOAN_*`` from
    the environment: the database, keys, secrets). ``microloan serve --workers N`` gives this
    factory to uvicorn (``factory=True``), which calls it once in each worker process: every
    worker has its own engine, connection pool and rate-limit counts."""
    p = Platform.connect(pool_size=SERVER_POOL_SIZE)
    app = create_app(p)
    p.warm_providers()  # the simulated providers' lookups, before the first applications
    settle_heap()
    return app


def settle_heap() -> None:
    """Once a server process has built its app: collect, then move every object alive into the
    collector's permanent generation (``gc.freeze``). The modules, routes, templates and
    compiled statements live as long as the process; left in the oldest generation, each of its
    collections walked all of them, holding every request for 115–145 ms (measured under the
    public load); frozen, those collections take 5–20 ms."""
    gc.collect()
    gc.freeze()
