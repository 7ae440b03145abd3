"""The training steps that need neither optbinning nor scikit-learn: split, bin assignment,
WoE/IV, points and rounding, and the wrong-sign rule of the regression step."""

from __future__ import annotations

import math

import numpy as np
import pytest

from microloan.errors import InvalidInput
from microloan.modeling import train as T
from microloan.modeling.data import MISSING_CODE


def test_stratified_split_is_seeded_disjoint_and_keeps_the_bad_rate() -> None:
    bad = np.array([1] * 30 + [0] * 70, dtype=np.int8)
    train, test = T.stratified_split(bad, 0.3, seed=42)
    assert (len(train), len(test)) == (70, 30)
    assert (int(bad[train].sum()), int(bad[test].sum())) == (21, 9)
    assert sorted([*train.tolist(), *test.tolist()]) == list(range(100))
    again = T.stratified_split(bad, 0.3, seed=42)
    assert again[1].tolist() == test.tolist()
    assert T.stratified_split(bad, 0.3, seed=7)[1].tolist() != test.tolist()


def test_split_needs_both_classes_on_both_sides() -> None:
    with pytest.raises(InvalidInput) as err:
        T.stratified_split(np.array([1, 0, 0, 0], dtype=np.int8), 0.3, seed=1)
    assert err.value.field == "data"


def test_numeric_assignment_matches_serving() -> None:
    b = T.Binning("x", "numeric", splits=(8.5, 11.5))
    values = np.array([-1.0, 8.5, 8.4999, 11.5, 100.0, np.nan])
    assert b.assign(values).tolist() == [0, 1, 0, 2, 2, 3]  # right-open; 3 = missing
    assert b.labels() == ["[-inf, 8.5)", "[8.5, 11.5)", "[11.5, inf)"]


def test_categorical_assignment_missing_and_unseen() -> None:
    b = T.Binning("c", "categorical", groups=((0, 2), (1,)), categories=("a", "b", "c", "d"))
    codes = np.array([0, 1, 2, 3, MISSING_CODE], dtype=np.int32)
    assert b.assign(codes).tolist() == [0, 1, 0, 3, 2]  # d never binned: unseen (k + 1)
    assert b.labels() == ["a | c", "b"]
    many = T.Binning("c", "categorical", groups=((0, 1, 2, 3),), categories=("a", "b", "c", "d"))
    assert many.labels() == ["a | b | c | … (+1)"]


def test_bin_stats_by_hand() -> None:
    index = np.array([0, 0, 0, 1, 1, 2])
    bad = np.array([0, 0, 1, 0, 1, 1], dtype=np.int8)
    s = T.bin_stats(index, bad, n_bins=2)
    assert s.counts.tolist() == [3, 2, 1] and s.bads.tolist() == [1, 1, 1]
    # WoE = ln(good share / bad share): ln((2/3)/(1/3)), ln((1/3)/(1/3)), and 0 for the pure
    # missing bin; IV = (2/3 - 1/3) ln 2.
    assert s.woe.tolist() == pytest.approx([math.log(2), 0.0, 0.0])
    assert s.iv == pytest.approx(math.log(2) / 3)


def test_round_half_up_names_its_ties() -> None:
    assert [T.round_half_up(x) for x in (2.5, 3.5, -2.5, 2.4999, -0.4)] == [3, 4, -3, 2, 0]


def _candidate(missing_rows: int) -> T.Candidate:
    binning = T.Binning("x", "numeric", splits=(10.0,))
    index = np.array([0, 0, 0, 1, 1] + [2] * missing_rows)
    bad = np.array([0, 0, 1, 0, 1] + [1] * missing_rows, dtype=np.int8)
    return T.Candidate(binning, T.bin_stats(index, bad, binning.n_bins), index)


def test_points_per_bin() -> None:
    factor = 20 / math.log(2)
    ch = T.characteristic_of(_candidate(1), coefficient=-1.0, base_points=50.0, factor=factor)
    # bin 0: WoE ln 2 (twice the good:bad odds of the whole) → one PDO above the base points;
    # bin 1: WoE 0 → the base points; missing: pure (bads only) → WoE 0 too.
    assert [b.points for b in ch.bins] == [70, 50]
    assert [b.woe for b in ch.bins] == [round(math.log(2), 6), 0.0]
    assert ch.missing.points == 50
    assert (ch.missing.count, ch.missing.event_rate) == (1, 1.0)
    assert T.points_table(ch).tolist() == [70, 50, 50, 50]  # unseen: the lowest regular bin
    flipped = T.characteristic_of(_candidate(1), coefficient=-0.5, base_points=50.2, factor=factor)
    assert [b.points for b in flipped.bins] == [60, 50]  # 60.2 and 50.2, rounded


def test_an_empty_missing_bin_gets_the_lowest_points() -> None:
    ch = T.characteristic_of(_candidate(0), coefficient=-1.0, base_points=50.0, factor=28.0)
    assert ch.missing.count == 0
    assert ch.missing.points == min(b.points for b in ch.bins)


def test_wrong_sign_characteristics_are_dropped_lowest_iv_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    strong, weak = _candidate(1), _candidate(2)
    weak = T.Candidate(T.Binning("w", "numeric", splits=(10.0,)), weak.stats, weak.index)
    assert weak.stats.iv != strong.stats.iv
    fits: list[int] = []

    def fake_fit(x: np.ndarray, bad: np.ndarray) -> tuple[float, np.ndarray]:
        fits.append(x.shape[1])
        return (-1.0, np.array([0.5, 0.3])) if x.shape[1] == 2 else (-1.0, np.array([-0.9]))

    monkeypatch.setattr(T, "fit_logistic", fake_fit)
    rows = np.arange(len(strong.index))
    sel = T.select_and_fit([strong, weak], rows, np.zeros(len(rows), dtype=np.int8), 0.0)
    lower = min((strong, weak), key=lambda c: c.stats.iv)
    assert fits == [2, 1]
    assert sel.dropped == {lower.name: "coefficient_sign"}
    other = weak if lower is strong else strong
    assert [c.name for c in sel.kept] == [other.name]
    assert sel.coefficients.tolist() == [-0.9]


def test_iv_threshold_and_nothing_left() -> None:
    c = _candidate(1)
    with pytest.raises(InvalidInput, match="no characteristic") as err:
        T.select_and_fit([c], np.arange(6), np.zeros(6, dtype=np.int8), min_iv=10.0)
    assert err.value.field == "data"


def test_options_are_checked() -> None:
    for bad in (
        T.TrainOptions(test_fraction=1.0),
        T.TrainOptions(min_iv=-1),
        T.TrainOptions(pdo=0),
        T.TrainOptions(workers=0),
        T.TrainOptions(channel=" "),
    ):
        with pytest.raises(InvalidInput):
            bad.check()
