"""Serving a scorecard from a hand-made artifact: bins, missing values, unseen categories, reason
codes, PD from the scaling, the version check, and properties over random rows and points."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microloan.decisions.scorecard import (
    MAX_REASONS,
    Scorecard,
    content_digest,
    scaling_constants,
    version_of,
)
from microloan.errors import InvalidInput, NotFound

OFFSET, FACTOR = scaling_constants(20, 600, 50)


def _bin(label: str, points: int, **extra: Any) -> dict[str, Any]:
    return {"label": label, "woe": 0.0, "points": points, "count": 10, "event_rate": 0.1, **extra}


def artifact(
    age: tuple[int, int, int] = (10, 20, 30),
    age_missing: int = 15,
    housing: tuple[int, int, int] = (30, 10, 20),
    housing_missing: int = 5,
    extra: int = 0,
) -> dict[str, Any]:
    """age: [-inf, 25) [25, 40) [40, inf); housing: own | rent | free, other."""
    chars: list[dict[str, Any]] = [
        {
            "name": "age",
            "kind": "numeric",
            "coefficient": -1.0,
            "splits": [25.0, 40.0],
            "bins": [
                _bin("[-inf, 25)", age[0]),
                _bin("[25, 40)", age[1]),
                _bin("[40, inf)", age[2]),
            ],
            "missing": _bin("missing", age_missing),
        },
        {
            "name": "housing",
            "kind": "categorical",
            "coefficient": -1.0,
            "unseen": "lowest_points",
            "bins": [
                _bin("own", housing[0], categories=["own"]),
                _bin("rent", housing[1], categories=["rent"]),
                _bin("free | other", housing[2], categories=["free", "other"]),
            ],
            "missing": _bin("missing", housing_missing),
        },
    ]
    for i in range(extra):  # characteristics worth 0 or 1 point, to test the reason cap
        chars.append(
            {
                "name": f"x{i}",
                "kind": "numeric",
                "coefficient": -1.0,
                "splits": [0.0],
                "bins": [_bin("[-inf, 0)", 0), _bin("[0, inf)", 1)],
                "missing": _bin("missing", 0),
            }
        )
    d: dict[str, Any] = {
        "format": "microloan.scorecard/1",
        "version": "",
        "channel": "wechat",
        "target": {"column": "bad", "bad_label": None},
        "scaling": {
            "pdo": 20.0,
            "base_score": 600.0,
            "base_odds": 50.0,
            "offset": OFFSET,
            "factor": FACTOR,
        },
        "intercept": -1.0,
        "characteristics": chars,
        "trained_at": "2026-01-31T01:00:00+00:00",
        "training": {"rows": 100},
    }
    d["version"] = version_of(d)
    return d


CARD = Scorecard.from_dict(artifact())


def test_numeric_bins_are_right_open() -> None:
    cases = {24.999: "[-inf, 25)", 25: "[25, 40)", 39.5: "[25, 40)", 40.0: "[40, inf)"}
    for value, label in cases.items():
        assert CARD.score({"age": value, "housing": "own"}).bins["age"] == label
    assert CARD.score({"age": -math.inf}).bins["age"] == "[-inf, 25)"
    assert CARD.score({"age": math.inf}).bins["age"] == "[40, inf)"
    assert CARD.score({"age": True}).bins["age"] == "[-inf, 25)"  # booleans are 0/1


def test_missing_key_none_and_nan_take_the_missing_bin() -> None:
    for row in ({}, {"age": None, "housing": None}, {"age": math.nan, "housing": math.nan}):
        r = CARD.score(row)
        assert r.bins == {"age": "missing", "housing": "missing"}
        assert r.points == {"age": 15, "housing": 5}
        assert r.score == 20


def test_categories_and_unseen_category_gets_the_lowest_points() -> None:
    assert CARD.score({"housing": "other"}).bins["housing"] == "free | other"
    r = CARD.score({"age": 50, "housing": "castle"})
    assert r.bins["housing"] == "unseen"
    assert r.points["housing"] == 10  # rent, the lowest regular bin (not the missing bin's 5)
    assert CARD.score({"housing": 3}).bins["housing"] == "unseen"  # compared as "3"


def test_non_numeric_value_for_a_numeric_characteristic_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        CARD.score({"age": "forty"})
    assert err.value.field == "age"


def test_score_pd_and_reasons_by_hand() -> None:
    r = CARD.score({"age": 30, "housing": "rent"})
    assert (r.score, r.points) == (30, {"age": 20, "housing": 10})
    assert r.pd == pytest.approx(1 / (1 + math.exp((30 - OFFSET) / FACTOR)), rel=1e-15)
    # Lost: age 30 − 20 = 10, housing 30 − 10 = 20 → housing first.
    assert r.reasons == ("housing", "age")
    assert r.version == CARD.version


def test_reasons_ties_keep_characteristic_order_and_best_bins_give_none() -> None:
    assert CARD.score({"age": 20, "housing": "rent"}).reasons == ("age", "housing")  # 20 and 20
    assert CARD.score({"age": 45, "housing": "own"}).reasons == ()


def test_at_most_four_reasons() -> None:
    card = Scorecard.from_dict(artifact(extra=5))
    r = card.score({"age": 10, "housing": "rent"})
    assert len(r.reasons) == MAX_REASONS
    assert r.reasons[:2] == ("age", "housing")
    assert r.reasons[2:] == ("x0", "x1")  # each lost 1 point (missing); earliest first


def test_pd_follows_the_scaling() -> None:
    assert CARD.pd_for(600) == pytest.approx(1 / 51, rel=1e-12)  # 50:1 at 600
    assert CARD.pd_for(620) == pytest.approx(1 / 101, rel=1e-12)  # doubled odds 20 points on
    assert 0.0 < CARD.pd_for(1500) < CARD.pd_for(0) < 1.0
    assert CARD.pd_for(50_000) == 0.0 and CARD.pd_for(-50_000) == 1.0  # no overflow


def test_round_trip_and_version_is_the_content_digest() -> None:
    d = artifact()
    assert Scorecard.from_dict(d).to_dict() == d
    assert d["version"] == "wechat-" + content_digest(d)[:12]
    later = {**d, "trained_at": "2027-01-01T00:00:00+00:00"}
    assert version_of(later) == d["version"]  # the time is kept out of the hash


def test_load_checks_the_version(tmp_path: Path) -> None:
    d = artifact()
    (tmp_path / "scorecard.json").write_text(json.dumps(d), encoding="utf-8")
    assert Scorecard.load(tmp_path) == CARD
    assert Scorecard.load(tmp_path / "scorecard.json") == CARD
    tampered = copy.deepcopy(d)
    tampered["characteristics"][0]["bins"][0]["points"] = 99
    (tmp_path / "scorecard.json").write_text(json.dumps(tampered), encoding="utf-8")
    with pytest.raises(InvalidInput, match="does not match") as err:
        Scorecard.load(tmp_path)
    assert err.value.field == "model"


def test_load_refuses_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as missing:
        Scorecard.load(tmp_path)
    assert missing.value.field == "model"
    (tmp_path / "scorecard.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidInput):
        Scorecard.load(tmp_path)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("characteristics", 0, "splits"), [40.0, 25.0]),
        (("characteristics", 0, "splits"), [25.0]),
        (("characteristics", 0, "kind"), "ordinal"),
        (("characteristics", 1, "bins", 2, "categories"), ["rent"]),
        (("characteristics", 1, "unseen"), "neutral"),
        (("characteristics", 0, "bins", 0, "points"), 10.5),
        (("scaling", "offset"), 400.0),
        (("format",), "other/1"),
    ],
)
def test_from_dict_refuses_inconsistent_artifacts(path: tuple[Any, ...], value: Any) -> None:
    d = artifact()
    target: Any = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InvalidInput) as err:
        Scorecard.from_dict(d)
    assert err.value.field == "model"


points = st.integers(min_value=-50, max_value=200)
rows = st.fixed_dictionaries(
    {},
    optional={
        "age": st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-10, 120)),
        "housing": st.one_of(st.none(), st.sampled_from(["own", "rent", "free", "other", "?"])),
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(points, points, points),
    points,
    st.tuples(points, points, points),
    points,
    rows,
)
def test_score_is_the_sum_of_points_and_reasons_are_the_losses(
    age: tuple[int, int, int],
    age_missing: int,
    housing: tuple[int, int, int],
    housing_missing: int,
    row: dict[str, Any],
) -> None:
    card = Scorecard.from_dict(artifact(age, age_missing, housing, housing_missing))
    r = card.score(row)
    assert r.score == sum(r.points.values())
    assert r.pd == card.pd_for(r.score)
    best = {"age": max(*age, age_missing), "housing": max(*housing, housing_missing)}
    lost = {n: best[n] - p for n, p in r.points.items()}
    assert set(r.reasons) == {n for n, x in lost.items() if x > 0}
    assert [lost[n] for n in r.reasons] == sorted((lost[n] for n in r.reasons), reverse=True)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=1200), st.integers(min_value=1, max_value=200))
def test_pd_strictly_decreases_as_the_score_rises(score: int, step: int) -> None:
    # Over any realistic range of scores (PD between about 1e-11 and 1 - 1e-8 here); far
    # outside it a float cannot tell 1 - PD, or PD, of neighbouring scores apart.
    low, high = CARD.pd_for(score), CARD.pd_for(score + step)
    assert 0.0 < high < low < 1.0
