"""The validation report of a trained scorecard: figures as JSON (``report.json``) and one
self-contained page (``report.html``, zh-CN first with English beside it) with inline SVG charts
drawn by matplotlib (no pyplot, no GUI backend): ROC, KS, score distribution, calibration, IV.

Every figure is computed from the integer scores the serving scorecard gives (``risk = -score``
for AUC and KS; PD from the exported scaling), so what the report says is what serving does.
"""

from __future__ import annotations

import html
import io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from microloan.decisions.scorecard import ARTIFACT_FILE, Scorecard
from microloan.errors import InvalidInput
from microloan.modeling import metrics
from microloan.modeling.data import Table, bad_flags, read_frame

REPORT_FORMAT = "microloan.scorecard-report/1"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
FIG_SIZE_IN = (6.0, 4.0)
HIST_BINS = 30


@dataclass(frozen=True)
class Built:
    data: dict[str, Any]
    charts: dict[str, str]  # chart name -> inline SVG


def pd_of(card: Scorecard, scores: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Vectorised ``Scorecard.pd_for`` (equal to it up to the last bit of ``exp``)."""
    z = (scores.astype(np.float64) - card.offset) / card.factor
    return np.asarray(1.0 / (1.0 + np.exp(z)), dtype=np.float64)


def discrimination(bad: npt.NDArray[np.int8], scores: npt.NDArray[np.int64]) -> dict[str, float]:
    risk = -scores.astype(np.float64)
    auc = metrics.auc(bad, risk)
    return {"auc": auc, "ks": metrics.ks(bad, risk), "gini": 2.0 * auc - 1.0}


def _psi_table(train: npt.NDArray[np.int64], test: npt.NDArray[np.int64]) -> dict[str, Any]:
    edges = metrics.psi_edges(train)
    e = metrics.psi_shares(train, edges)
    a = metrics.psi_shares(test, edges)
    bounds = [-np.inf, *edges.tolist(), np.inf]
    rows = [
        {"from": _finite(lo), "to": _finite(hi), "train_share": float(x), "test_share": float(y)}
        for lo, hi, x, y in zip(bounds, bounds[1:], e, a, strict=False)
    ]
    return {"value": metrics.psi(train, test), "bins": rows}


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def build_report(
    *,
    card: Scorecard,
    table: Table,
    candidates: Sequence[dict[str, Any]],
    dropped: dict[str, str],
    train_rows: npt.NDArray[np.int64],
    test_rows: npt.NDArray[np.int64],
    scores: npt.NDArray[np.int64],
) -> Built:
    bad = table.bad
    s_train, s_test = scores[train_rows], scores[test_rows]
    b_train, b_test = bad[train_rows], bad[test_rows]
    pd_test = pd_of(card, s_test)
    by_iv = sorted(candidates, key=lambda c: (-c["iv"], c["name"]))
    data: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "version": card.version,
        "channel": card.channel,
        "trained_at": card.trained_at,
        "data": {
            "file": table.path.name,
            "sha256": card.training.get("data_sha256"),
            "rows": table.rows,
            "target": table.target,
            "bad_label": table.bad_label,
        },
        "min_iv": card.training.get("min_iv"),
        "split": {
            "seed": card.training.get("seed"),
            "test_fraction": card.training.get("test_fraction"),
        },
        "rows": {"train": len(train_rows), "test": len(test_rows)},
        "bad_rate": {"train": float(b_train.mean()), "test": float(b_test.mean())},
        "metrics": {
            "train": discrimination(b_train, s_train),
            "test": discrimination(b_test, s_test),
        },
        "score": {
            "train": {
                "min": int(s_train.min()),
                "max": int(s_train.max()),
                "mean": float(s_train.mean()),
            },
            "test": {
                "min": int(s_test.min()),
                "max": int(s_test.max()),
                "mean": float(s_test.mean()),
            },
        },
        "psi": _psi_table(s_train, s_test),
        "calibration": [asdict(r) for r in metrics.calibration(b_test, pd_test)],
        "characteristics": [
            {**c, "kept": c["name"] not in dropped, "reason": dropped.get(c["name"])} for c in by_iv
        ],
        "scaling": card.to_dict()["scaling"],
        "intercept": card.intercept,
        "bins": {
            ch.name: [
                {
                    "label": b.label,
                    "count": b.count,
                    "event_rate": b.event_rate,
                    "woe": b.woe,
                    "points": b.points,
                }
                for b in (*ch.bins, ch.missing)
            ]
            for ch in card.characteristics
        },
        "coefficients": {ch.name: ch.coefficient for ch in card.characteristics},
    }
    charts = draw_charts(data, b_train, s_train, b_test, s_test)
    return Built(data, charts)


# -- charts -------------------------------------------------------------------------------


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def draw_charts(
    data: dict[str, Any],
    b_train: npt.NDArray[np.int8],
    s_train: npt.NDArray[np.int64],
    b_test: npt.NDArray[np.int8],
    s_test: npt.NDArray[np.int64],
) -> dict[str, str]:
    import matplotlib
    from matplotlib.figure import Figure

    matplotlib.rcParams["svg.hashsalt"] = "microloan"  # stable element ids
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable
    charts = {}

    fig = Figure(figsize=FIG_SIZE_IN)
    ax = fig.add_subplot()
    for name, b, s, style in (("train", b_train, s_train, "--"), ("test", b_test, s_test, "-")):
        c = metrics.curves(b, -s.astype(np.float64))
        auc = data["metrics"][name]["auc"]
        ax.plot(c.good, c.bad, style, label=f"{name} AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate (goods)", ylabel="true positive rate (bads)", title="ROC")
    ax.legend(loc="lower right")
    charts["roc"] = _svg(fig)

    fig = Figure(figsize=FIG_SIZE_IN)
    ax = fig.add_subplot()
    c = metrics.curves(b_test, -s_test.astype(np.float64))
    thresholds = -c.thresholds[1:]  # scores, low to high
    ax.step(thresholds, c.bad[1:], where="post", label="bads (cumulative)")
    ax.step(thresholds, c.good[1:], where="post", label="goods (cumulative)")
    gap = np.abs(c.bad - c.good)[1:]
    at = int(np.argmax(gap))
    ax.vlines(thresholds[at], c.good[1:][at], c.bad[1:][at], colors="black", linestyles=":")
    ax.set(xlabel="score", ylabel="cumulative share", title=f"KS {gap[at]:.3f} (test)")
    ax.legend(loc="lower right")
    charts["ks"] = _svg(fig)

    fig = Figure(figsize=FIG_SIZE_IN)
    ax = fig.add_subplot()
    edges = np.histogram_bin_edges(s_test, bins=HIST_BINS).tolist()
    for label, mask in (("good", b_test == 0), ("bad", b_test == 1)):
        weights = np.full(int(mask.sum()), 1.0 / max(int(mask.sum()), 1))
        ax.hist(s_test[mask], bins=edges, weights=weights, histtype="step", label=label)
    ax.set(xlabel="score", ylabel="share of class", title="Score distribution (test)")
    ax.legend()
    charts["distribution"] = _svg(fig)

    fig = Figure(figsize=FIG_SIZE_IN)
    ax = fig.add_subplot()
    cal = data["calibration"]
    deciles = [r["decile"] for r in cal]
    ax.plot(deciles, [r["mean_pd"] for r in cal], "o-", label="mean predicted PD")
    ax.plot(deciles, [r["bad_rate"] for r in cal], "s--", label="observed bad rate")
    ax.set(xlabel="decile of predicted PD (1 = lowest)", ylabel="rate", title="Calibration (test)")
    ax.legend()
    charts["calibration"] = _svg(fig)

    rows = data["characteristics"]
    fig = Figure(figsize=(FIG_SIZE_IN[0], max(2.5, 0.28 * len(rows) + 1.0)))
    ax = fig.add_subplot()
    ys = np.arange(len(rows))[::-1]
    colors = ["tab:blue" if r["kept"] else "lightgrey" for r in rows]
    ax.barh(ys, [r["iv"] for r in rows], color=colors)
    ax.set_yticks(ys, [r["name"][:40] for r in rows], fontsize=7)
    min_iv = data.get("min_iv")
    if min_iv is not None:
        ax.axvline(min_iv, color="red", linestyle=":")
    ax.set(xlabel="information value (blue: kept, grey: dropped)", title="IV")
    charts["iv"] = _svg(fig)
    return charts


# -- the page -----------------------------------------------------------------------------


def _f(x: Any, digits: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return html.escape(str(x))


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_f(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


CSS = """
body{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;margin:2rem auto;
max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}
td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:1rem}.charts figure{margin:0;max-width:520px}
.charts svg{max-width:100%;height:auto}.muted{color:#777}
"""


def render_html(data: dict[str, Any], charts: dict[str, str]) -> str:
    m = data["metrics"]
    parts = [
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>评分卡验证报告 Scorecard validation report — {html.escape(data['version'])}"
        "</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>评分卡验证报告 Scorecard validation report</h1>",
        f"<p>版本 Version <b>{html.escape(data['version'])}</b> · 渠道 Channel "
        f"{_f(data['channel'] or 'all')} · 训练时间 Trained at {_f(data['trained_at'])} · "
        f"数据 Data {_f(data['data']['file'])} ({data['data']['rows']} 行 rows)</p>",
        "<h2>概览 Summary</h2>",
        _table(
            ["", "行数 Rows", "坏账率 Bad rate", "AUC", "KS", "Gini"],
            [
                [f"{zh} {name}", data["rows"][name], data["bad_rate"][name], *m[name].values()]
                for zh, name in (("训练", "train"), ("测试", "test"))
            ],
        ),
        f"<p>PSI (训练→测试 train → test, 10 组 bins by train deciles): "
        f"<b>{data['psi']['value']:.4f}</b></p>",
        '<h2>图表 Charts</h2><div class="charts">',
    ]
    captions = {
        "roc": "ROC 曲线 ROC curve",
        "ks": "KS 曲线 KS curve",
        "distribution": "分数分布 Score distribution (good vs bad)",
        "calibration": "分组校准 Calibration by decile",
        "iv": "信息值 Information value",
    }
    for key, caption in captions.items():
        parts.append(f"<figure>{charts[key]}<figcaption>{caption}</figcaption></figure>")
    parts.append("</div>")
    parts.append("<h2>稳定性 Population stability (PSI bins)</h2>")
    parts.append(
        _table(
            ["从 From", "到 To", "训练占比 Train share", "测试占比 Test share"],
            [[r["from"], r["to"], r["train_share"], r["test_share"]] for r in data["psi"]["bins"]],
        )
    )
    parts.append("<h2>校准 Calibration by decile (test)</h2>")
    parts.append(
        _table(
            ["组 Decile", "行数 Count", "平均 PD Mean PD", "实际坏账率 Observed bad rate"],
            [[r["decile"], r["count"], r["mean_pd"], r["bad_rate"]] for r in data["calibration"]],
        )
    )
    parts.append("<h2>特征信息值 Characteristics by IV</h2>")
    parts.append(
        _table(
            ["特征 Characteristic", "类型 Kind", "IV", "保留 Kept", "原因 Reason"],
            [
                [c["name"], c["kind"], c["iv"], "是 yes" if c["kept"] else "否 no", c["reason"]]
                for c in data["characteristics"]
            ],
        )
    )
    parts.append("<h2>分箱与分值 Bins and points</h2>")
    for name, bins in data["bins"].items():
        coef = data["coefficients"][name]
        parts.append(f"<h3>{html.escape(name)} <span class='muted'>β = {coef:.4f}</span></h3>")
        parts.append(
            _table(
                ["分箱 Bin", "行数 Count", "坏账率 Bad rate", "WOE", "分值 Points"],
                [[b["label"], b["count"], b["event_rate"], b["woe"], b["points"]] for b in bins],
            )
        )
    s = data["scaling"]
    parts.append(
        "<h2>刻度 Scaling</h2>"
        f"<p>{s['base_score']:g} 分对应好坏比 {s['base_odds']:g}:1，每 {s['pdo']:g} 分翻倍 · "
        f"{s['base_score']:g} points at {s['base_odds']:g}:1 good:bad odds, odds double every "
        f"{s['pdo']:g} points; offset {s['offset']:.4f}, factor {s['factor']:.4f}; "
        "PD = 1 / (1 + exp((score − offset) / factor)).</p>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)


# -- writing ------------------------------------------------------------------------------


def _write_atomic(path: Path, text: str) -> None:
    """Write beside ``path`` and rename over it: a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_all(out_dir: Path, card: Scorecard, built: Built) -> None:
    """scorecard.json, report.json and report.html, each replaced whole."""
    out_dir.mkdir(parents=True, exist_ok=True)
    artifact = json.dumps(card.to_dict(), ensure_ascii=False, indent=2) + "\n"
    assert Scorecard.from_dict(json.loads(artifact)) == card, "artifact does not read back"
    _write_atomic(out_dir / ARTIFACT_FILE, artifact)
    _write_atomic(
        out_dir / REPORT_JSON, json.dumps(built.data, ensure_ascii=False, indent=2) + "\n"
    )
    _write_atomic(out_dir / REPORT_HTML, render_html(built.data, built.charts))


# -- evaluating an exported scorecard on new data -----------------------------------------


@dataclass(frozen=True)
class Evaluation:
    summary: dict[str, Any]
    scores: list[int]
    pds: list[float]


def evaluate(model: Path, data: Path, *, target: str, bad_label: str | None = None) -> Evaluation:
    """Score every row of ``data`` with the serving scorecard and measure it: rows, bad rate,
    AUC, KS, Gini, and the PSI of the scores against the training scores."""
    card = Scorecard.load(model)
    frame = read_frame(data)
    bad = bad_flags(frame, target, bad_label)
    names = [ch.name for ch in card.characteristics]
    present = [n for n in names if n in frame.columns]
    scores: list[int] = []
    pds: list[float] = []
    for i, row in enumerate(frame.select(present).iter_rows(named=True), start=1):
        try:
            result = card.score(row)
        except InvalidInput as exc:
            raise InvalidInput(f"row {i}: {exc.message}", field=exc.field) from None
        scores.append(result.score)
        pds.append(result.pd)
    s = np.asarray(scores, dtype=np.int64)
    summary: dict[str, Any] = {
        "version": card.version,
        "rows": len(scores),
        "bad_rate": float(bad.mean()),
        **discrimination(bad, s),
        "psi": _psi_vs_training(card, s),
        "score": {"min": int(s.min()), "max": int(s.max()), "mean": float(s.mean())},
        "missing_columns": [n for n in names if n not in present],
    }
    return Evaluation(summary, scores, pds)


def _psi_vs_training(card: Scorecard, scores: npt.NDArray[np.int64]) -> float | None:
    edges = card.training.get("score_psi_edges")
    shares = card.training.get("score_psi_shares")
    if edges is None or shares is None:
        return None
    return metrics.psi_against(edges, shares, scores)
