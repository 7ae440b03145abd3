"""Reading a labelled table: target forms, refusals naming the field, characteristic kinds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from microloan.errors import InvalidInput, NotFound
from microloan.modeling.data import MISSING_CODE, bad_flags, load_table, read_frame, to_column


def _frame(target: list[object]) -> pl.DataFrame:
    return pl.DataFrame({"y": target, "x": list(range(len(target)))}, strict=False)


@pytest.mark.parametrize(
    "target",
    [
        [0, 1, 0, 1],
        [0.0, 1.0, 0.0, 1.0],
        [False, True, False, True],
        ["0", "1", "0", "1"],
        ["false", "TRUE", "False", " true "],
    ],
)
def test_binary_targets(target: list[object]) -> None:
    assert bad_flags(_frame(target), "y", None).tolist() == [0, 1, 0, 1]


def test_bad_label_names_the_bad_class_and_everything_else_is_good() -> None:
    frame = _frame(["good", "bad", "unknown", "bad"])
    assert bad_flags(frame, "y", "bad").tolist() == [0, 1, 0, 1]
    assert bad_flags(_frame([3, 7, 3, 5]), "y", "7").tolist() == [0, 1, 0, 0]


@pytest.mark.parametrize(
    ("target", "bad_label", "field", "message"),
    [
        (["good", "bad"], None, "target", "not 0/1"),
        ([0, 2], None, "target", "not 0/1"),
        (["good", "bad"], "BAD", "bad_label", "does not occur"),
        ([0, 0], None, "target", "no bad rows"),
        (["bad", "bad"], "bad", "target", "no good rows"),
        ([0, None], None, "target", "1 rows have no value"),
    ],
)
def test_target_refusals_name_the_field(
    target: list[object], bad_label: str | None, field: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as err:
        bad_flags(_frame(target), "y", bad_label)
    assert err.value.field == field


def test_unknown_target_column() -> None:
    with pytest.raises(InvalidInput, match="no column 'z'") as err:
        bad_flags(_frame([0, 1]), "z", None)
    assert err.value.field == "target"


def test_read_frame_refusals(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as missing:
        read_frame(tmp_path / "absent.csv")
    assert missing.value.field == "data"
    other = tmp_path / "data.xlsx"
    other.write_text("x")
    with pytest.raises(InvalidInput, match=r"\.csv or \.parquet"):
        read_frame(other)
    header_only = tmp_path / "empty.csv"
    header_only.write_text("y,x\n")
    with pytest.raises(InvalidInput, match="no rows") as empty:
        read_frame(header_only)
    assert empty.value.field == "data"
    nothing = tmp_path / "nothing.csv"
    nothing.write_text("")
    with pytest.raises(InvalidInput) as blank:
        read_frame(nothing)
    assert blank.value.field == "data"


def test_load_table_kinds_exclusions_and_missing_values(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pl.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "income": [1.5, None, 3.0, float("nan")],
            "flag": [True, False, None, True],
            "city": ["b", None, "a", "b"],
            "bad": [0, 1, 0, 1],
        }
    ).write_parquet(path)
    table = load_table(path, target="bad", exclude=["id"])
    assert [(c.name, c.kind) for c in table.columns] == [
        ("income", "numeric"),
        ("flag", "numeric"),
        ("city", "categorical"),
    ]
    income, flag, city = table.columns
    assert np.isnan(income.values[[1, 3]]).all() and income.values[0] == 1.5
    assert flag.values[:2].tolist() == [1.0, 0.0] and np.isnan(flag.values[2])
    assert city.categories == ("a", "b")
    assert city.values.tolist() == [1, MISSING_CODE, 0, 1]
    with pytest.raises(InvalidInput) as err:
        load_table(path, target="bad", exclude=["nope"])
    assert err.value.field == "exclude"


def test_columns_of_other_types_are_refused() -> None:
    from datetime import date

    with pytest.raises(InvalidInput, match="exclude it") as err:
        to_column(pl.Series("when", [date(2026, 1, 1)]))
    assert err.value.field == "data"
