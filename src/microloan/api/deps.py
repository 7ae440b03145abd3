"""Dependencies shared by the routers: the platform and the rate limiter of the app."""

from __future__ import annotations

from fastapi import Request

from microloan.api.ratelimit import RateLimiter
from microloan.service.platform import Platform


def get_platform(request: Request) -> Platform:
    p: Platform = request.app.state.platform
    return p


def get_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.limiter
    return limiter


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def limit_public(request: Request, p: Platform, limiter: RateLimiter) -> None:
    """The public pages' and endpoints' limit, per client address."""
    limiter.hit("public", client_address(request), p.settings.rate_limit_public)
