"""Server-rendered pages (Jinja2): mobile first, Chinese with an English switch (``?lang=en``,
kept in a cookie), an elderly mode (``?mode=elderly``: large text, one thing per screen).
Public pages first: "is this invitation official?" and the referral landing of a shared code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from microloan.api.deps import get_limiter, get_platform, limit_public
from microloan.api.ratelimit import RateLimiter
from microloan.service import invitations
from microloan.service.invitations import MAX_CODE_INPUT_CHARS
from microloan.service.platform import Platform

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "site": "微粒贷式循环贷",
        "skip": "跳到正文",
        "switch_lang": "English",
        "elderly_on": "长辈模式",
        "elderly_off": "标准模式",
        "check_title": "邀请码验真",
        "check_intro": "收到邀请码?在这里确认它是不是平台发出的。",
        "code_label": "邀请码",
        "code_hint": "16 位字母和数字,例如 7K2M-9QF3-PA1X-0D4R",
        "check_button": "验证",
        "genuine": "真:平台发出的正式邀请",
        "not_genuine": "假:不是平台发出的邀请",
        "landing_title": "好友邀请你开通",
        "channel": "渠道",
        "home_title": "欢迎",
        "free": "开通和提额都免费,任何人要你付费都是诈骗。",
    },
    "en": {
        "site": "microloan",
        "skip": "Skip to content",
        "switch_lang": "中文",
        "elderly_on": "Large text",
        "elderly_off": "Standard text",
        "check_title": "Is this invitation official?",
        "check_intro": "Got an invitation code? Check here that the platform issued it.",
        "code_label": "Invitation code",
        "code_hint": "16 letters and digits, e.g. 7K2M-9QF3-PA1X-0D4R",
        "check_button": "Check",
        "genuine": "Genuine: an official invitation",
        "not_genuine": "NOT genuine: the platform did not issue this code",
        "landing_title": "A friend invited you",
        "channel": "Channel",
        "home_title": "Welcome",
        "free": "Opening and raising a line are free: anyone asking you to pay is a scam.",
    },
}


def page_context(request: Request, **extra: Any) -> dict[str, Any]:
    """Language and mode from the query (then remembered in cookies) or the cookies."""
    lang = request.query_params.get("lang") or request.cookies.get("lang") or "zh"
    lang = lang if lang in TEXT else "zh"
    mode = request.query_params.get("mode") or request.cookies.get("mode") or "standard"
    mode = mode if mode in ("standard", "elderly") else "standard"
    return {
        "request": request,
        "lang": lang,
        "html_lang": "zh-CN" if lang == "zh" else "en",
        "mode": mode,
        "t": TEXT[lang],
        "other_lang": "en" if lang == "zh" else "zh",
        "other_mode": "standard" if mode == "elderly" else "elderly",
        **extra,
    }


def render(request: Request, name: str, **extra: Any) -> HTMLResponse:
    ctx = page_context(request, **extra)
    response = templates.TemplateResponse(request, name, ctx)
    for key in ("lang", "mode"):
        if key in request.query_params:
            response.set_cookie(key, ctx[key], max_age=365 * 86400, samesite="lax")
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    return render(request, "home.html")


@router.get("/check", response_class=HTMLResponse)
def check_page(
    request: Request,
    p: Annotated[Platform, Depends(get_platform)],
    limiter: Annotated[RateLimiter, Depends(get_limiter)],
    code: Annotated[str | None, Query(max_length=MAX_CODE_INPUT_CHARS)] = None,
) -> HTMLResponse:
    limit_public(request, p, limiter)
    answer = invitations.check_code(p, code) if code else None
    return render(request, "check.html", code=code or "", answer=answer)


@router.get("/r/{code}", response_class=HTMLResponse)
def landing_page(
    code: str,
    request: Request,
    p: Annotated[Platform, Depends(get_platform)],
    limiter: Annotated[RateLimiter, Depends(get_limiter)],
) -> HTMLResponse:
    limit_public(request, p, limiter)
    answer = invitations.check_code(p, code[:MAX_CODE_INPUT_CHARS])
    return render(request, "landing.html", answer=answer)
