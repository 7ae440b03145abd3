"""The public API: "is this invitation official?" and the referral landing, open to anyone (a
shared code travels by chat, so the people asking are not customers yet). Rate-limited per
client address; never writes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from microloan.api.deps import get_limiter, get_platform, limit_public
from microloan.api.problems import InputRoute
from microloan.api.ratelimit import RateLimiter
from microloan.service import invitations
from microloan.service.invitations import MAX_CODE_INPUT_CHARS
from microloan.service.platform import Platform
from microloan.store.schema import channel

router = APIRouter(route_class=InputRoute)

Code = Annotated[str, Path(max_length=MAX_CODE_INPUT_CHARS, description="邀请码 invitation code")]


class InvitationCheck(BaseModel):
    code: str
    genuine: bool
    channel: str | None
    message_zh: str
    message_en: str


class ReferralLanding(InvitationCheck):
    channel_name_zh: str | None
    channel_name_en: str | None


@router.get(
    "/invitations/{code}",
    response_model=InvitationCheck,
    summary="邀请码验真 Is this invitation official?",
)
def check_invitation(
    code: Code,
    request: Request,
    p: Annotated[Platform, Depends(get_platform)],
    limiter: Annotated[RateLimiter, Depends(get_limiter)],
) -> InvitationCheck:
    """Genuine means signed by the platform and issued by it. Opening is free: nobody is ever
    to be paid to open a line or raise it."""
    limit_public(request, p, limiter)
    return InvitationCheck(**invitations.check_code(p, code))


@router.get(
    "/referrals/{code}",
    response_model=ReferralLanding,
    summary="分享邀请落地 Referral landing",
)
def referral_landing(
    code: Code,
    request: Request,
    p: Annotated[Platform, Depends(get_platform)],
    limiter: Annotated[RateLimiter, Depends(get_limiter)],
) -> ReferralLanding:
    """What the landing page of a shared code shows: whether it is genuine and the channel it
    belongs to; entering with it happens in the channel, through the borrower API."""
    limit_public(request, p, limiter)
    answer = invitations.check_code(p, code)
    names = _channel_names(p).get(answer["channel"] or "", (None, None))
    return ReferralLanding(**answer, channel_name_zh=names[0], channel_name_en=names[1])


def _channel_names(p: Platform) -> dict[str, tuple[str, str]]:
    with p.engine.connect() as conn:
        return {
            r.code: (r.name_zh, r.name_en)
            for r in conn.execute(
                channel.select().with_only_columns(
                    channel.c.code, channel.c.name_zh, channel.c.name_en
                )
            )
        }
