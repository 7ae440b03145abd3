"""Validation metrics of a score, with numpy: AUC by ranks (ties share their mean rank), KS,
Gini, PSI and calibration by decile.

Conventions: ``bad`` is a 0/1 array (1 = bad); ``risk`` is any score that grows with the chance
of being bad (a PD, or minus the points score). Every function refuses arrays of different
lengths and, where the metric needs both classes, data with one class only (``ValueError``:
the callers check their data first, so this is a programmer error).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
PSI_BINS = 10
PSI_FLOOR = 1e-4  # share given to an empty bin so that ln(a / e) stays finite


def _check(bad: npt.ArrayLike, risk: npt.ArrayLike) -> tuple[npt.NDArray[np.int8], FloatArray]:
    b = np.asarray(bad).astype(np.int8, copy=False)
    r = np.asarray(risk, dtype=np.float64)
    if b.shape != r.shape or b.ndim != 1:
        raise ValueError(f"bad and risk must be 1-d of one length: {b.shape} vs {r.shape}")
    if not np.isin(b, (0, 1)).all():
        raise ValueError("bad must hold 0 and 1 only")
    n_bad = int(b.sum())
    if n_bad == 0 or n_bad == len(b):
        raise ValueError("needs both good and bad rows")
    if np.isnan(r).any():
        raise ValueError("risk has NaN")
    return b, r


def mean_ranks(values: npt.ArrayLike) -> FloatArray:
    """1-based ranks, ties given the mean of the ranks they span."""
    v = np.asarray(values, dtype=np.float64)
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # rank of the last member of each group of ties
    group_mean = ends - (counts - 1) / 2.0
    return np.asarray(group_mean[inverse], dtype=np.float64)


def auc(bad: npt.ArrayLike, risk: npt.ArrayLike) -> float:
    """P(risk of a bad row > risk of a good row), ties counting one half (Mann–Whitney)."""
    b, r = _check(bad, risk)
    n_bad = int(b.sum())
    n_good = len(b) - n_bad
    rank_sum = float(mean_ranks(r)[b == 1].sum())
    return (rank_sum - n_bad * (n_bad + 1) / 2.0) / (n_bad * n_good)


def gini(bad: npt.ArrayLike, risk: npt.ArrayLike) -> float:
    return 2.0 * auc(bad, risk) - 1.0


@dataclass(frozen=True)
class Curves:
    """Cumulative shares at each distinct risk threshold, from the riskiest down: ``bad`` is the
    true-positive rate, ``good`` the false-positive rate (both start at 0, end at 1)."""

    thresholds: FloatArray
    bad: FloatArray
    good: FloatArray


def curves(bad: npt.ArrayLike, risk: npt.ArrayLike) -> Curves:
    b, r = _check(bad, risk)
    levels, inverse = np.unique(-r, return_inverse=True)  # riskiest first
    n_bad_at = np.bincount(inverse, weights=b, minlength=len(levels))
    n_at = np.bincount(inverse, minlength=len(levels))
    cum_bad = np.concatenate([[0.0], np.cumsum(n_bad_at)]) / b.sum()
    cum_good = np.concatenate([[0.0], np.cumsum(n_at - n_bad_at)]) / (len(b) - b.sum())
    return Curves(np.concatenate([[np.inf], -levels]), cum_bad, cum_good)


def ks(bad: npt.ArrayLike, risk: npt.ArrayLike) -> float:
    """Kolmogorov–Smirnov: the largest gap between the cumulative shares of bad and good."""
    c = curves(bad, risk)
    return float(np.max(np.abs(c.bad - c.good)))


def psi_edges(expected: npt.ArrayLike, n_bins: int = PSI_BINS) -> FloatArray:
    """Inner edges from the quantiles of ``expected`` (repeated edges, from ties, merged)."""
    e = np.asarray(expected, dtype=np.float64)
    if e.size == 0:
        raise ValueError("expected is empty")
    qs = np.quantile(e, np.arange(1, n_bins) / n_bins)
    return np.asarray(np.unique(qs), dtype=np.float64)


def psi_shares(values: npt.ArrayLike, edges: npt.ArrayLike) -> FloatArray:
    """Share of ``values`` per bin; bin ``i`` holds ``edges[i-1] <= x < edges[i]``."""
    v = np.asarray(values, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    counts = np.bincount(np.searchsorted(e, v, side="right"), minlength=len(e) + 1)
    return np.asarray(counts / max(len(v), 1), dtype=np.float64)


def psi_against(
    edges: npt.ArrayLike, expected_shares: npt.ArrayLike, actual: npt.ArrayLike
) -> float:
    """PSI of ``actual`` against shares already known on ``edges``:
    ``sum((a - e) * ln(a / e))``, shares below 1e-4 (empty bins) floored at 1e-4."""
    e = np.maximum(np.asarray(expected_shares, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(psi_shares(actual, edges), PSI_FLOOR)
    if e.shape != a.shape:
        raise ValueError(f"{len(e)} expected shares for {len(a)} bins")
    return float(np.sum((a - e) * np.log(a / e)))


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike, n_bins: int = PSI_BINS) -> float:
    """Population stability index of ``actual`` against ``expected``, on bins cut at the
    deciles of ``expected``."""
    edges = psi_edges(expected, n_bins)
    return psi_against(edges, psi_shares(expected, edges), actual)


@dataclass(frozen=True)
class CalibrationRow:
    decile: int
    count: int
    mean_pd: float
    bad_rate: float
    min_pd: float
    max_pd: float


def calibration(bad: npt.ArrayLike, pd: npt.ArrayLike, n_groups: int = 10) -> list[CalibrationRow]:
    """Rows sorted by predicted PD (stable sort) and cut into ``n_groups`` groups of as equal a
    size as possible, lowest PD first; mean predicted PD against the observed bad rate."""
    b = np.asarray(bad, dtype=np.float64)
    p = np.asarray(pd, dtype=np.float64)
    if b.shape != p.shape or b.ndim != 1:
        raise ValueError("bad and pd must be 1-d of one length")
    order = np.argsort(p, kind="stable")
    rows = []
    for i, part in enumerate(np.array_split(order, n_groups), start=1):
        if len(part) == 0:
            continue
        rows.append(
            CalibrationRow(
                decile=i,
                count=len(part),
                mean_pd=float(p[part].mean()),
                bad_rate=float(b[part].mean()),
                min_pd=float(p[part].min()),
                max_pd=float(p[part].max()),
            )
        )
    return rows
