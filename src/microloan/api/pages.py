"""Server-rendered pages (Jinja2): mobile first, Chinese with an English switch (``?lang=en``,
kept in a cookie), an elderly mode (``?mode=elderly``: large text, one thing per screen).
Public pages first: "is this invitation official?" and the referral landing of a shared code."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from microloan.api.deps import limit_public, limiter_of, platform_of
from microloan.service import invitations
from microloan.service.invitations import MAX_CODE_INPUT_CHARS

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
        "accept": "用此邀请码开通",
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
        "accept": "Open an account with this code",
        "home_title": "Welcome",
        "free": "Opening and raising a line are free: anyone asking you to pay is a scam.",
    },
}


def page_context(
    request: Request, text: dict[str, dict[str, str]] | None = None, **extra: Any
) -> dict[str, Any]:
    """Language and mode from the query (then remembered in cookies) or the cookies; ``text``
    adds a page family's own strings (borrower pages, console) to the shared ones."""
    lang = request.query_params.get("lang") or request.cookies.get("lang") or "zh"
    lang = lang if lang in TEXT else "zh"
    mode = request.query_params.get("mode") or request.cookies.get("mode") or "standard"
    mode = mode if mode in ("standard", "elderly") else "standard"
    other_lang = "en" if lang == "zh" else "zh"
    other_mode = "standard" if mode == "elderly" else "elderly"
    return {
        "request": request,
        "lang_href": _same_page(request, lang=other_lang),
        "mode_href": _same_page(request, mode=other_mode),
        "lang": lang,
        "html_lang": "zh-CN" if lang == "zh" else "en",
        "mode": mode,
        "t": TEXT[lang] if text is None else {**TEXT[lang], **text[lang]},
        "other_lang": other_lang,
        "other_mode": other_mode,
        **extra,
    }


def _same_page(request: Request, **params: str) -> str:
    """This page with its query kept and ``params`` replaced (the language and mode links)."""
    url = request.url.include_query_params(**params)
    return f"{url.path}?{url.query}"


def render(
    request: Request,
    name: str,
    text: dict[str, dict[str, str]] | None = None,
    status_code: int = 200,
    **extra: Any,
) -> HTMLResponse:
    ctx = page_context(request, text, **extra)
    response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    for key in ("lang", "mode"):
        if key in request.query_params:
            response.set_cookie(key, ctx[key], max_age=365 * 86400, samesite="lax")
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    return render(request, "home.html")


@router.get("/check", response_class=HTMLResponse)
async def check_page(
    request: Request,
    code: Annotated[str | None, Query(max_length=MAX_CODE_INPUT_CHARS)] = None,
) -> HTMLResponse:
    answer = await _public_check(request, code)
    return render(request, "check.html", code=code or "", answer=answer)


@router.get("/r/{code}", response_class=HTMLResponse)
async def landing_page(code: str, request: Request) -> HTMLResponse:
    answer = await _public_check(request, code[:MAX_CODE_INPUT_CHARS])
    assert answer is not None, "a path parameter is never empty"
    lang, mode = request.cookies.get("lang"), request.cookies.get("mode")
    scope = request.scope
    kept = kept_landing(scope["path"], scope["query_string"], lang, mode, answer)
    if kept is not None:
        page = HTMLResponse(kept[2], status_code=kept[0])
        page.raw_headers = list(kept[1])  # as rendered: length, type, cookies the query set
        return page
    page = render(request, "landing.html", answer=answer)
    key = (scope["path"], scope["query_string"], lang, mode, *_answer_key(answer))
    _landing_pages[key] = (page.status_code, tuple(page.raw_headers), bytes(page.body))
    if len(_landing_pages) > LANDING_PAGES_MAX:
        _landing_pages.popitem(last=False)  # the least recently served
    return page


# A landing page is a pure function of its address, the language and mode cookies and the
# answer (whether the code is genuine, and its channel): a shared code's page, opened by many at
# once, is rendered once and served again as rendered, here and by the public hot path
# (``api/hotpath.py``). The answer is part of the key, so a kept page is never older than the
# answer it shows (an issued code's is confirmed again every CHECK_CACHE_TTL_S seconds); the
# most recently served LANDING_PAGES_MAX pages are kept (about 2 KB each).
LANDING_PAGES_MAX = 16_384
Headers = tuple[tuple[bytes, bytes], ...]
# (path, query, lang and mode cookies, answer) → (status, raw headers, body)
_landing_pages: OrderedDict[tuple[Any, ...], tuple[int, Headers, bytes]] = OrderedDict()


def _answer_key(answer: dict[str, Any]) -> tuple[Any, ...]:
    return answer["code"], answer["genuine"], answer["channel"]


def kept_landing(
    path: str, query: bytes, lang: str | None, mode: str | None, answer: dict[str, Any]
) -> tuple[int, Headers, bytes] | None:
    """The landing page rendered for this address, query, language and mode cookies and
    answer: (status, raw headers, body), else None."""
    key = (path, query, lang, mode, *_answer_key(answer))
    kept = _landing_pages.get(key)
    if kept is not None:
        _landing_pages.move_to_end(key)  # on the event loop, as every use of the pages kept
    return kept


async def _public_check(request: Request, code: str | None) -> dict[str, Any] | None:
    """The public limit, then the invitation check, for the two public pages. On the event
    loop: the in-memory count, the signature and a recent confirmation of an issued code take
    microseconds and no thread; only a database read (or a shared rate-limit store) goes to the
    thread pool."""
    p, limiter = platform_of(request), limiter_of(request)
    if limiter.blocking:
        await run_in_threadpool(limit_public, request, p, limiter)
    else:
        limit_public(request, p, limiter)
    if not code:
        return None
    answer = invitations.cached_check(p, code)
    if answer is None:
        answer = await run_in_threadpool(invitations.check_code, p, code)
    return answer
