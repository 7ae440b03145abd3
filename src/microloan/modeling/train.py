"""Training a points scorecard: split, bin, select, regress, scale, export, report.

1. A seeded split stratified on the bad flag (default 70 % train, 30 % test, seed 42).
2. Per characteristic, optbinning's ``OptimalBinning`` on the train rows (numeric:
   ``monotonic_trend="auto_asc_desc"``; categorical: ``dtype="categorical"``). Only its bin
   boundaries are kept; counts, WoE and IV are recomputed here from the rows each bin gets with
   the serving rules, so training and serving cannot disagree on a bin.
   WoE = ln(share of goods / share of bads) (positive = safer); a bin with no goods or no bads
   gets WoE 0, as in optbinning; IV = sum((good share - bad share) * WoE).
3. Characteristics with IV below ``min_iv`` are dropped; a logistic regression of the bad flag
   on the WoE follows; a characteristic whose coefficient comes out with the wrong sign (not
   negative: its points would run against its own bins) is dropped, the lowest IV first, and the
   regression refitted.
4. Points: ``factor = pdo / ln 2``, ``offset = base_score - factor * ln(base_odds)``; with ``m``
   characteristics, intercept ``b0`` and coefficients ``b_i``, a bin with WoE ``w`` gets
   ``-factor * b_i * w + (offset - factor * b0) / m`` points, rounded half up (ties away from
   zero) to an integer: the intercept is spread evenly, so the score is the sum of the points.
   An empty missing bin takes the points of the characteristic's lowest-points bin.
5. The scorecard is exported with its version (a digest of its content) and scored on train and
   test with the same integer points the serving code adds up; report.json and report.html
   follow (``microloan.modeling.report``).
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from microloan.decisions.scorecard import (
    ARTIFACT_FILE,
    MISSING_LABEL,
    Bin,
    Characteristic,
    Scorecard,
    scaling_constants,
    version_of,
)
from microloan.errors import InvalidInput
from microloan.modeling import metrics
from microloan.modeling.data import MISSING_CODE, Column, Table, load_table

Progress = Callable[[str, int, int], None]  # (what is being done, done, total)
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
DIGITS = 6  # decimals of the floats exported (WoE, rates, coefficients): stable across BLAS
MAX_LABEL_CATEGORIES = 3
LR_MAX_ITER = 1000


@dataclass(frozen=True)
class TrainOptions:
    seed: int = 42
    test_fraction: float = 0.3
    min_iv: float = 0.02
    pdo: float = 20.0
    base_score: float = 600.0
    base_odds: float = 50.0
    channel: str | None = None
    max_n_prebins: int = 20
    min_prebin_size: float = 0.05
    workers: int = 1

    def check(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise InvalidInput("must be between 0 and 1", field="test_fraction")
        if self.min_iv < 0:
            raise InvalidInput("must be ≥ 0", field="min_iv")
        if self.pdo <= 0 or self.base_odds <= 0:
            raise InvalidInput("pdo and base odds must be positive", field="scaling")
        if self.max_n_prebins < 2 or not 0.0 < self.min_prebin_size < 0.5:
            raise InvalidInput("max_n_prebins ≥ 2 and min_prebin_size in (0, 0.5)", field="binning")
        if self.workers < 1:
            raise InvalidInput("must be ≥ 1", field="workers")
        if self.channel is not None and not self.channel.strip():
            raise InvalidInput("must not be blank", field="channel")


# -- 1. split -----------------------------------------------------------------------------


def stratified_split(
    bad: npt.NDArray[np.int8], test_fraction: float, seed: int
) -> tuple[IntArray, IntArray]:
    """Row indices (ascending) of train and test: each class shuffled with the seed and its first
    ``round(n_class * test_fraction)`` rows sent to test."""
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for cls in (0, 1):
        rows = np.flatnonzero(bad == cls)
        rng.shuffle(rows)
        n_test = int(Decimal(repr(len(rows) * test_fraction)).to_integral_value(ROUND_HALF_UP))
        test_parts.append(rows[:n_test])
        train_parts.append(rows[n_test:])
    train = np.sort(np.concatenate(train_parts)).astype(np.int64)
    test = np.sort(np.concatenate(test_parts)).astype(np.int64)
    for name, part in (("train", train), ("test", test)):
        n_bad = int(bad[part].sum())
        if n_bad == 0 or n_bad == len(part):
            raise InvalidInput(
                f"too few rows of one class for a {name} part with both goods and bads",
                field="data",
            )
    return train, test


# -- 2. binning ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Binning:
    """Bin boundaries of one characteristic. ``assign`` gives each row its bin: ``0..k-1`` the
    regular bins, ``k`` missing, ``k+1`` an unseen category."""

    name: str
    kind: Literal["numeric", "categorical"]
    splits: tuple[float, ...] = ()
    groups: tuple[tuple[int, ...], ...] = ()  # categorical: category codes per bin
    categories: tuple[str, ...] = ()
    status: str = "OPTIMAL"

    @property
    def n_bins(self) -> int:
        return len(self.splits) + 1 if self.kind == "numeric" else max(len(self.groups), 1)

    def assign(self, values: npt.NDArray[Any]) -> IntArray:
        k = self.n_bins
        if self.kind == "numeric":
            x = np.asarray(values, dtype=np.float64)
            out = np.searchsorted(np.asarray(self.splits, dtype=np.float64), x, side="right")
            out[np.isnan(x)] = k
            return out.astype(np.int64)
        lookup = np.full(len(self.categories) + 1, k + 1, dtype=np.int64)  # last: missing code
        for i, group in enumerate(self.groups):
            lookup[list(group)] = i
        lookup[-1] = k
        codes = np.asarray(values, dtype=np.int64)
        return lookup[np.where(codes == MISSING_CODE, len(self.categories), codes)]

    def labels(self) -> list[str]:
        if self.kind == "categorical":
            return [_group_label([self.categories[c] for c in g]) for g in self.groups] or ["all"]
        edges = [-math.inf, *self.splits, math.inf]
        text = [format(e, ".6g") for e in edges]
        if len(set(text)) < len(text):
            text = [repr(e) for e in edges]
        return [f"[{a}, {b})" for a, b in itertools.pairwise(text)]


def _group_label(names: Sequence[str]) -> str:
    shown = " | ".join(names[:MAX_LABEL_CATEGORIES])
    more = len(names) - MAX_LABEL_CATEGORIES
    return f"{shown} | … (+{more})" if more > 0 else shown


def fit_binning(column: Column, bad: npt.NDArray[np.int8], options: TrainOptions) -> Binning:
    """optbinning's optimal bins of one characteristic on the given (train) rows."""
    from optbinning import OptimalBinning

    params: dict[str, Any] = {
        "name": column.name,
        "max_n_prebins": options.max_n_prebins,
        "min_prebin_size": options.min_prebin_size,
    }
    if column.kind == "numeric":
        x = np.asarray(column.values, dtype=np.float64)
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            return Binning(column.name, "numeric", status="NO_DATA")
        if finite.size + np.isnan(x).sum() < x.size:  # ±inf: CART refuses them; the edge
            x = np.clip(x, finite.min(), finite.max())  # bins take them, as in serving
        binner = OptimalBinning(dtype="numerical", monotonic_trend="auto_asc_desc", **params)
    else:
        codes = np.asarray(column.values)
        if (codes == MISSING_CODE).all():
            return Binning(
                column.name, "categorical", categories=column.categories, status="NO_DATA"
            )
        x = np.where(codes == MISSING_CODE, np.nan, codes).astype(np.float64)
        binner = OptimalBinning(dtype="categorical", **params)
    with warnings.catch_warnings():
        # optbinning's own use of pandas and scikit-learn may warn about their future versions.
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        binner.fit(x, bad)
    if column.kind == "numeric":
        splits = tuple(float(s) for s in binner.splits)
        return Binning(column.name, "numeric", splits=splits, status=str(binner.status))
    groups = tuple(tuple(sorted(int(c) for c in g)) for g in binner.splits)
    return Binning(
        column.name,
        "categorical",
        groups=groups,
        categories=column.categories,
        status=str(binner.status),
    )


def _fit_one(args: tuple[Column, npt.NDArray[np.int8], TrainOptions]) -> Binning:
    return fit_binning(*args)


def fit_binnings(
    columns: Sequence[Column],
    bad: npt.NDArray[np.int8],
    options: TrainOptions,
    progress: Progress | None,
) -> list[Binning]:
    """Bin every column (in ``options.workers`` processes when more than one)."""
    total = len(columns)
    jobs = [(c, bad, options) for c in columns]
    if options.workers == 1 or total < 2:
        if progress:
            progress("加载 loading optbinning", 0, total)
        importlib.import_module("optbinning")  # seconds: say so before the first bar moves
        out = []
        for i, job in enumerate(jobs):
            if progress:
                progress(f"分箱 binning {job[0].name}", i, total)
            out.append(_fit_one(job))
        if progress:
            progress("分箱 binning", total, total)
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=options.workers, mp_context=context) as pool:
        out = []
        for i, binning in enumerate(pool.map(_fit_one, jobs)):
            out.append(binning)
            if progress:
                progress(f"分箱 binning {binning.name}", i + 1, total)
        return out


@dataclass(frozen=True)
class BinStats:
    """Per bin (regular bins, then missing): rows, bads, WoE; and the characteristic's IV."""

    counts: IntArray
    bads: IntArray
    woe: FloatArray
    iv: float


def bin_stats(index: IntArray, bad: npt.NDArray[np.int8], n_bins: int) -> BinStats:
    slots = n_bins + 1  # regular bins and missing; unseen categories are counted nowhere
    seen = index < slots
    counts = np.bincount(index[seen], minlength=slots).astype(np.int64)
    bads = np.bincount(index[seen], weights=bad[seen], minlength=slots).astype(np.int64)
    goods = counts - bads
    total_bad, total_good = int(bad.sum()), len(bad) - int(bad.sum())
    good_share = goods / total_good
    bad_share = bads / total_bad
    pure = (goods == 0) | (bads == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        woe = np.where(pure, 0.0, np.log(good_share / bad_share))
    iv = float(np.sum((good_share - bad_share) * woe))
    return BinStats(counts, bads, woe.astype(np.float64), iv)


# -- 3. selection and regression ----------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    binning: Binning
    stats: BinStats
    index: IntArray  # bin of every row of the table

    @property
    def name(self) -> str:
        return self.binning.name

    def woe_of(self, rows: IntArray) -> FloatArray:
        woe = np.concatenate([self.stats.woe, [0.0]])  # unseen: neutral while fitting
        return np.asarray(woe[self.index[rows]], dtype=np.float64)


def fit_logistic(x: FloatArray, bad: npt.NDArray[np.int8]) -> tuple[float, FloatArray]:
    """Unpenalised logistic regression of the bad flag: ``(intercept, coefficients)``."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=LR_MAX_ITER)
    model.fit(x, bad)
    return float(model.intercept_[0]), np.asarray(model.coef_[0], dtype=np.float64)


@dataclass
class Selection:
    kept: list[Candidate]
    dropped: dict[str, str] = field(default_factory=dict)  # name -> reason
    intercept: float = 0.0
    coefficients: FloatArray = field(default_factory=lambda: np.zeros(0))


def select_and_fit(
    candidates: Sequence[Candidate], train: IntArray, bad: npt.NDArray[np.int8], min_iv: float
) -> Selection:
    kept = [c for c in candidates if c.stats.iv >= min_iv]
    sel = Selection(kept=kept)
    for c in candidates:
        if c.stats.iv < min_iv:
            sel.dropped[c.name] = f"iv_below_{min_iv:g}"
    while sel.kept:
        x = np.column_stack([c.woe_of(train) for c in sel.kept])
        sel.intercept, sel.coefficients = fit_logistic(x, bad[train])
        wrong = [i for i, b in enumerate(sel.coefficients) if not b < 0]
        if not wrong:
            return sel
        worst = min(wrong, key=lambda i: (sel.kept[i].stats.iv, i))
        sel.dropped[sel.kept[worst].name] = "coefficient_sign"
        del sel.kept[worst]
    raise InvalidInput(
        f"no characteristic reaches IV {min_iv:g} with a usable coefficient", field="data"
    )


# -- 4. points ----------------------------------------------------------------------------


def round_half_up(x: float) -> int:
    return int(Decimal(repr(x)).to_integral_value(rounding=ROUND_HALF_UP))


def _round(x: float) -> float:
    return round(float(x), DIGITS)


def characteristic_of(
    c: Candidate, coefficient: float, base_points: float, factor: float
) -> Characteristic:
    k = c.binning.n_bins
    s = c.stats
    raw = [round_half_up(-factor * coefficient * float(w) + base_points) for w in s.woe]
    lowest = min(range(k), key=lambda i: (raw[i], i))
    if s.counts[k] == 0:  # no missing value in training: the conservative points
        raw[k] = raw[lowest]
        missing_woe = float(s.woe[lowest])
    else:
        missing_woe = float(s.woe[k])

    def make(i: int, label: str, woe: float, categories: tuple[str, ...] = ()) -> Bin:
        rate = float(s.bads[i] / s.counts[i]) if s.counts[i] else 0.0
        return Bin(label, _round(woe), raw[i], int(s.counts[i]), _round(rate), categories)

    labels = c.binning.labels()
    groups = c.binning.groups or ((),)
    bins = tuple(
        make(
            i,
            labels[i],
            float(s.woe[i]),
            tuple(c.binning.categories[j] for j in groups[i])
            if c.binning.kind == "categorical"
            else (),
        )
        for i in range(k)
    )
    return Characteristic(
        name=c.name,
        kind=c.binning.kind,
        bins=bins,
        missing=make(k, MISSING_LABEL, missing_woe),
        splits=c.binning.splits,
        coefficient=_round(coefficient),
    )


def points_table(ch: Characteristic) -> IntArray:
    """Points by bin index as ``Binning.assign`` numbers them (regular, missing, unseen)."""
    regular = [b.points for b in ch.bins]
    unseen = regular[regular.index(min(regular))]
    return np.asarray([*regular, ch.missing.points, unseen], dtype=np.int64)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_characteristics(sel: Selection, options: TrainOptions) -> tuple[Characteristic, ...]:
    offset, factor = scaling_constants(options.pdo, options.base_score, options.base_odds)
    base_points = (offset - factor * sel.intercept) / len(sel.kept)
    return tuple(
        characteristic_of(c, float(b), base_points, factor)
        for c, b in zip(sel.kept, sel.coefficients, strict=True)
    )


def score_rows(sel: Selection, chars: Sequence[Characteristic], n_rows: int) -> IntArray:
    """The score of every row of the table: the same integer points serving adds up."""
    scores = np.zeros(n_rows, dtype=np.int64)
    for c, ch in zip(sel.kept, chars, strict=True):
        scores += points_table(ch)[c.index]
    return scores


def build_scorecard(
    sel: Selection,
    chars: tuple[Characteristic, ...],
    table: Table,
    options: TrainOptions,
    train_scores: IntArray,
    trained_at: datetime,
) -> Scorecard:
    """The exported scorecard; its version is the digest of everything but the time."""
    offset, factor = scaling_constants(options.pdo, options.base_score, options.base_odds)
    edges = metrics.psi_edges(train_scores)
    shares = metrics.psi_shares(train_scores, edges)
    draft = Scorecard(
        version="",
        channel=options.channel,
        target=table.target,
        bad_label=table.bad_label,
        pdo=float(options.pdo),
        base_score=float(options.base_score),
        base_odds=float(options.base_odds),
        offset=_round(offset),
        factor=_round(factor),
        intercept=_round(sel.intercept),
        characteristics=chars,
        trained_at=trained_at.isoformat(),
        training={
            "data_sha256": file_sha256(table.path),
            "rows": len(train_scores),
            "seed": options.seed,
            "test_fraction": options.test_fraction,
            "min_iv": options.min_iv,
            "max_n_prebins": options.max_n_prebins,
            "min_prebin_size": options.min_prebin_size,
            # The train score distribution, for the PSI of later populations against it.
            "score_psi_edges": [float(e) for e in edges],
            "score_psi_shares": [_round(x) for x in shares],
        },
    )
    return Scorecard.from_dict({**draft.to_dict(), "version": version_of(draft.to_dict())})


# -- 5. the whole run ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    scorecard: Scorecard
    report: dict[str, Any]
    out_dir: Path
    train_rows: IntArray
    test_rows: IntArray
    scores: IntArray  # every row of the table, as the serving scorecard scores it

    @property
    def files(self) -> dict[str, Path]:
        return {n: self.out_dir / n for n in (ARTIFACT_FILE, "report.json", "report.html")}


def check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInput(f"{out_dir} exists and is not a folder", field="out")


def train(
    data: Path,
    *,
    target: str,
    out_dir: Path,
    trained_at: datetime,
    bad_label: str | None = None,
    exclude: Sequence[str] = (),
    options: TrainOptions | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train on ``data`` and write scorecard.json, report.json and report.html to ``out_dir``;
    nothing is written when the input is refused."""
    from microloan.modeling import report

    opts = options or TrainOptions()
    opts.check()
    check_out_dir(out_dir)
    if progress:
        progress("读取数据 reading data", 0, 1)
    table = load_table(data, target=target, bad_label=bad_label, exclude=exclude)
    train_rows, test_rows = stratified_split(table.bad, opts.test_fraction, opts.seed)
    bad_train = table.bad[train_rows]
    sub = [Column(c.name, c.kind, c.values[train_rows], c.categories) for c in table.columns]
    binnings = fit_binnings(sub, bad_train, opts, progress)
    del sub
    candidates = []
    for column, binning in zip(table.columns, binnings, strict=True):
        index = binning.assign(column.values)
        stats = bin_stats(index[train_rows], bad_train, binning.n_bins)
        candidates.append(Candidate(binning, stats, index))
    if progress:
        progress("回归 logistic regression", 0, 1)
    sel = select_and_fit(candidates, train_rows, table.bad, opts.min_iv)
    chars = build_characteristics(sel, opts)
    scores = score_rows(sel, chars, table.rows)
    card = build_scorecard(sel, chars, table, opts, scores[train_rows], trained_at)
    if progress:
        progress("报告 report", 0, 1)
    built = report.build_report(
        card=card,
        table=table,
        candidates=[
            {
                "name": c.name,
                "kind": c.binning.kind,
                "iv": c.stats.iv,
                "bins": c.binning.n_bins,
                "binning_status": c.binning.status,
            }
            for c in candidates
        ],
        dropped=sel.dropped,
        train_rows=train_rows,
        test_rows=test_rows,
        scores=scores,
    )
    report.write_all(out_dir, card, built)
    if progress:
        progress("完成 done", 1, 1)
    return TrainResult(card, built.data, out_dir, train_rows, test_rows, scores)


def default_workers() -> int:
    return max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
