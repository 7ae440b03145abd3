"""Small charts for the console, drawn on the server by matplotlib as inline SVG.

No pyplot: each chart is its own ``Figure`` on an Agg canvas, so no global figure state is
shared between requests. The SVG keeps its text as text (``svg.fonttype = none``), gets
``role="img"`` with a ``<title>`` and ``<desc>`` naming it, and its ids are prefixed so that
several charts can sit in one page. Matplotlib takes a second to import: it is imported on the
first chart, not with the app. Charts are cached by their inputs (the page shows stored figures
of closed dates, which do not change).

Values are display values only (floats); the exact figures are in the tables beside each chart.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any

from markupsafe import Markup, escape

FIG_SIZE_IN = (5.6, 2.9)
MAX_POINTS = 120  # bars or points per series: the pages pass at most this many
CACHE_CHARTS = 128
# families that have Chinese glyphs, in order of preference; without one the charts' own
# labels are drawn in English (matplotlib would warn of missing glyphs)
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
    "Noto Sans CJK JP",
)
HATCHES = ("", "///", "...", "xx", "\\\\\\", "++")
MARKERS = ("o", "s", "^", "D", "v", "P")
LINESTYLES = ("-", "--", ":", "-.")

Series = tuple[str, tuple[float, ...]]


@cache
def _matplotlib() -> Any:
    import matplotlib

    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable
    matplotlib.rcParams["svg.hashsalt"] = "microloan"  # stable ids, so equal charts are equal
    return matplotlib


@cache
def cjk_family() -> str | None:
    """An installed font family with Chinese glyphs, or None."""
    _matplotlib()
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FAMILIES if name in installed), None)


def can_draw_chinese() -> bool:
    return cjk_family() is not None


def _figure() -> tuple[Any, Any, list[str]]:
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIG_SIZE_IN, layout="constrained")
    FigureCanvasAgg(fig)
    cjk = cjk_family()
    families = ["DejaVu Sans", cjk] if cjk else ["DejaVu Sans"]
    return fig, fig.add_subplot(), families


def _fonts(ax: Any, families: list[str]) -> None:
    for text in (ax.title, ax.xaxis.label, ax.yaxis.label):
        text.set_fontfamily(families)
    for label in (*ax.get_xticklabels(), *ax.get_yticklabels()):
        label.set_fontfamily(families)


_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|href="#)([^")]+)')


def _svg(fig: Any, key: str, title: str, description: str) -> Markup:
    """The figure as accessible inline SVG; ``key`` makes its ids unique in the page."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = _ID.sub(lambda m: f'id="{key}-{m.group(1)}"', text)
    text = _REF.sub(lambda m: f"{m.group(1)}{key}-{m.group(2)}", text)
    head_end = text.index(">")
    named = (
        f' role="img" aria-labelledby="{key}-title" aria-describedby="{key}-desc"'
        f' class="chart">\n<title id="{key}-title">{escape(title)}</title>'
        f'\n<desc id="{key}-desc">{escape(description)}</desc>'
    )
    return Markup(text[:head_end] + named + text[head_end + 1 :])


def _check(labels: Sequence[str], series: Sequence[Series]) -> None:
    assert 0 < len(series) <= len(HATCHES)
    assert len(labels) <= MAX_POINTS
    assert all(len(values) == len(labels) for _, values in series)


@lru_cache(maxsize=CACHE_CHARTS)
def bar_chart(
    key: str,
    title: str,
    description: str,
    labels: tuple[str, ...],
    series: tuple[Series, ...],
    *,
    ylabel: str = "",
    stacked: bool = False,
    counts: bool = False,
) -> Markup:
    """Grouped (or stacked) bars; each series has its own hatch, so colour is not the only key.
    ``counts``: whole numbers on the value axis."""
    _check(labels, series)
    fig, ax, families = _figure()
    xs = list(range(len(labels)))
    width = 0.8 if stacked else 0.8 / len(series)
    bottoms = [0.0] * len(labels)
    for i, (name, values) in enumerate(series):
        offsets = xs if stacked else [x - 0.4 + width * (i + 0.5) for x in xs]
        ax.bar(
            offsets,
            values,
            width,
            bottom=bottoms if stacked else None,
            label=name,
            hatch=HATCHES[i],
            edgecolor="black",
            linewidth=0.5,
        )
        if stacked:
            bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    step = max(1, len(labels) // 10)  # at most about ten labels
    rotation = 30 if len(labels) > 6 else 0
    ax.set_xticks(xs[::step], labels[::step], rotation=rotation, ha="right", fontsize=8)
    if counts:
        ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set(ylabel=ylabel)  # the title is the page's caption, in the page's language
    _fonts(ax, families)
    if len(series) > 1:
        ax.legend(prop={"family": families, "size": 8})
    return _svg(fig, key, title, description)


@lru_cache(maxsize=CACHE_CHARTS)
def line_chart(
    key: str,
    title: str,
    description: str,
    labels: tuple[str, ...],
    series: tuple[Series, ...],
    *,
    ylabel: str = "",
) -> Markup:
    """Lines over dates; each series has its own marker and dash pattern."""
    _check(labels, series)
    fig, ax, families = _figure()
    xs = list(range(len(labels)))
    for i, (name, values) in enumerate(series):
        ax.plot(
            xs,
            values,
            marker=MARKERS[i],
            linestyle=LINESTYLES[i % len(LINESTYLES)],
            markersize=4,
            label=name,
        )
    step = max(1, len(labels) // 8)  # at most about eight date labels
    ax.set_xticks(xs[::step], labels[::step], rotation=30, ha="right", fontsize=8)
    ax.set(ylabel=ylabel)  # the title is the page's caption, in the page's language
    ax.grid(axis="y", linestyle=":", linewidth=0.5)
    _fonts(ax, families)
    if len(series) > 1:
        ax.legend(prop={"family": families, "size": 8})
    return _svg(fig, key, title, description)
