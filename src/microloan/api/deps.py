"""Dependencies shared by the routers: the platform and the rate limiter of the app."""

from __future__ import annotations

from fastapi import Request

from microloan.api.ratelimit import RateLimiter
from microloan.service.platform import Platform


def platform_of(request: Request) -> Platform:
    p: Platform = request.app.state.platform
    return p


def limiter_of(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.limiter
    return limiter


# The dependencies: coroutines, so that FastAPI runs them on the event loop (a plain function
# dependency takes a trip through the thread pool on every request).


async def get_platform(request: Request) -> Platform:
    return platform_of(request)


async def get_limiter(request: Request) -> RateLimiter:
    return limiter_of(request)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def limit_public(request: Request, p: Platform, limiter: RateLimiter) -> None:
    """The public pages' and endpoints' limit, per client address."""
    limiter.hit("public", client_address(request), p.settings.rate_limit_public)
