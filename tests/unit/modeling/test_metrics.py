"""Validation metrics on examples small enough to check by hand, and AUC against pair counting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microloan.modeling import metrics


def test_mean_ranks_share_ties() -> None:
    assert metrics.mean_ranks([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert metrics.mean_ranks([5, 5, 5]).tolist() == [2.0, 2.0, 2.0]


def test_auc_by_hand_with_a_tie() -> None:
    # Pairs (bad, good): (0.9, 0.1) 1, (0.9, 0.4) 1, (0.4, 0.1) 1, (0.4, 0.4) ½ → 3.5 / 4.
    bad, risk = [1, 0, 1, 0], [0.9, 0.1, 0.4, 0.4]
    assert metrics.auc(bad, risk) == 0.875
    assert metrics.gini(bad, risk) == 0.75


def test_auc_extremes() -> None:
    assert metrics.auc([1, 1, 0, 0], [4, 3, 2, 1]) == 1.0
    assert metrics.auc([1, 1, 0, 0], [1, 2, 3, 4]) == 0.0
    assert metrics.auc([1, 0, 1, 0], [7, 7, 7, 7]) == 0.5


def _pair_auc(bad: list[int], risk: list[float]) -> float:
    pairs = [
        (rb, rg)
        for rb, b in zip(risk, bad, strict=True)
        if b
        for rg, g in zip(risk, bad, strict=True)
        if not g
    ]
    return sum(1.0 if rb > rg else 0.5 if rb == rg else 0.0 for rb, rg in pairs) / len(pairs)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=2, max_size=40).filter(
        lambda rows: 0 < sum(b for b, _ in rows) < len(rows)
    )
)
def test_auc_equals_pair_counting(rows: list[tuple[bool, int]]) -> None:
    bad = [int(b) for b, _ in rows]
    risk = [float(r) for _, r in rows]
    assert metrics.auc(bad, risk) == pytest.approx(_pair_auc(bad, risk), abs=1e-12)


def test_ks_by_hand() -> None:
    # Riskiest first: after 4 → bads ½, goods 0; after 3 → ½, ½; after 2 → 1, ½; after 1 → 1, 1.
    assert metrics.ks([1, 0, 1, 0], [4, 3, 2, 1]) == 0.5
    assert metrics.ks([1, 1, 0, 0], [4, 3, 2, 1]) == 1.0
    c = metrics.curves([1, 0, 1, 0], [4, 3, 2, 1])
    assert c.bad.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert c.good.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert c.thresholds.tolist() == [math.inf, 4.0, 3.0, 2.0, 1.0]


def test_ks_groups_ties() -> None:
    # One tied group holding everything: the curve jumps from (0, 0) to (1, 1).
    assert metrics.ks([1, 0], [3, 3]) == 0.0


def test_psi_by_hand() -> None:
    expected = list(range(10))  # two bins cut at the median 4.5: ½ and ½
    actual = [0, 0, 0, 9]  # ¾ and ¼
    want = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert metrics.psi(expected, actual, n_bins=2) == pytest.approx(want, rel=1e-12)
    assert metrics.psi(expected, expected) == 0.0


def test_psi_bins_are_right_open_and_empty_bins_stay_finite() -> None:
    edges = metrics.psi_edges(list(range(10)), n_bins=2)
    assert edges.tolist() == [4.5]
    assert metrics.psi_shares([4.5, 4.4], edges).tolist() == [0.5, 0.5]
    value = metrics.psi(list(range(10)), [0, 1, 2], n_bins=2)
    assert math.isfinite(value) and value > 1.0


def test_psi_merges_repeated_edges() -> None:
    scores = [500] * 50 + [600] * 50  # deciles 500 ×4, 550 (interpolated), 600 ×4
    assert metrics.psi_edges(scores).tolist() == [500.0, 550.0, 600.0]


def test_calibration_deciles() -> None:
    pd = [i / 100 for i in range(20)]
    bad = [0, 1] * 10
    rows = metrics.calibration(bad, pd)
    assert [r.count for r in rows] == [2] * 10
    assert rows[0].mean_pd == pytest.approx(0.005)
    assert rows[-1].mean_pd == pytest.approx(0.185)
    assert all(r.bad_rate == 0.5 for r in rows)
    assert [r.decile for r in rows] == list(range(1, 11))


def test_calibration_with_fewer_rows_than_groups() -> None:
    rows = metrics.calibration([1, 0, 0], [0.3, 0.1, 0.2])
    assert [(r.count, r.mean_pd, r.bad_rate) for r in rows] == [
        (1, 0.1, 0.0),
        (1, 0.2, 0.0),
        (1, 0.3, 1.0),
    ]


def test_refuses_one_class_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="both"):
        metrics.auc([0, 0], [1, 2])
    with pytest.raises(ValueError, match="one length"):
        metrics.ks([0, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="0 and 1"):
        metrics.auc([0, 2], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        metrics.auc([0, 1], [1, np.nan])
