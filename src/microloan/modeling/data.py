"""Reading a labelled table (CSV or Parquet, by extension) into a 0/1 bad flag and candidate
characteristics, refusing what cannot be modelled with the field named.

- The target is 0/1 (numbers, ``true``/``false``, or their text) unless ``bad_label`` names the
  bad class, in which case every other value is good. A row without a target is refused.
- Every other column, less ``exclude``, is a candidate: text (and polars categoricals) are
  categorical, numbers and booleans numeric; nulls (and NaN) are missing values.
- Categorical values are coded as integers in sorted order of the text, ``-1`` for missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from microloan.errors import InvalidInput, NotFound

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
TRUE_TEXT = frozenset({"1", "true"})
FALSE_TEXT = frozenset({"0", "false"})
MAX_VALUES_SHOWN = 8
MISSING_CODE = -1


@dataclass(frozen=True)
class Column:
    """A candidate characteristic. Numeric: ``values`` float64, NaN when missing. Categorical:
    ``values`` int32 codes into ``categories`` (sorted), ``MISSING_CODE`` when missing."""

    name: str
    kind: Literal["numeric", "categorical"]
    values: npt.NDArray[np.float64] | npt.NDArray[np.int32]
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    path: Path
    target: str
    bad_label: str | None
    bad: npt.NDArray[np.int8]
    columns: tuple[Column, ...]

    @property
    def rows(self) -> int:
        return len(self.bad)


def read_frame(path: Path) -> pl.DataFrame:
    """The whole file as a polars frame; a missing or unreadable file is refused."""
    if not path.is_file():
        raise NotFound(f"no data file at {path}", field="data")
    suffix = path.suffix.lower()
    try:
        if suffix in CSV_SUFFIXES:
            frame = pl.read_csv(path, infer_schema_length=None)
        elif suffix in PARQUET_SUFFIXES:
            frame = pl.read_parquet(path)
        else:
            raise InvalidInput(
                f"{path.name}: use a .csv or .parquet file (got {suffix or 'no extension'!r})",
                field="data",
            )
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"cannot read {path.name}: {first}", field="data") from None
    if frame.height == 0:
        raise InvalidInput(f"{path.name} has no rows", field="data")
    return frame


def _shown(values: Iterable[object]) -> str:
    listed = sorted({str(v) for v in values})
    more = f", … ({len(listed)} values)" if len(listed) > MAX_VALUES_SHOWN else ""
    return ", ".join(repr(v) for v in listed[:MAX_VALUES_SHOWN]) + more


def bad_flags(frame: pl.DataFrame, target: str, bad_label: str | None) -> npt.NDArray[np.int8]:
    """The 0/1 bad flag of every row (see the module docstring)."""
    if target not in frame.columns:
        raise InvalidInput(
            f"no column {target!r} in the data (columns: {_shown(frame.columns)})", field="target"
        )
    s = frame.get_column(target)
    nulls = s.null_count()
    if nulls:
        raise InvalidInput(
            f"{nulls} rows have no value in target column {target!r}", field="target"
        )
    if bad_label is not None:
        text = s.cast(pl.String)
        flags = (text == bad_label).to_numpy().astype(np.int8)
        if not flags.any():
            raise InvalidInput(
                f"bad label {bad_label!r} does not occur in {target!r} "
                f"(values: {_shown(text.unique())})",
                field="bad_label",
            )
        return _both_classes(flags, target)
    if s.dtype == pl.Boolean:
        return _both_classes(s.to_numpy().astype(np.int8), target)
    if s.dtype.is_numeric():
        values = s.cast(pl.Float64)
        if values.is_in([0.0, 1.0]).all():
            return _both_classes(values.to_numpy().astype(np.int8), target)
    elif s.dtype == pl.String:
        text = s.str.strip_chars().str.to_lowercase()
        if text.is_in(list(TRUE_TEXT | FALSE_TEXT)).all():
            return _both_classes(text.is_in(list(TRUE_TEXT)).to_numpy().astype(np.int8), target)
    raise InvalidInput(
        f"target {target!r} is not 0/1 (values: {_shown(s.unique().to_list())}); "
        "name the bad class with --bad-label",
        field="target",
    )


def _both_classes(flags: npt.NDArray[np.int8], target: str) -> npt.NDArray[np.int8]:
    n_bad = int(flags.sum())
    if n_bad == 0 or n_bad == len(flags):
        which = "bad" if n_bad == 0 else "good"
        raise InvalidInput(f"no {which} rows in target {target!r}: needs both", field="target")
    return flags


def candidate_names(frame: pl.DataFrame, target: str, exclude: Sequence[str]) -> list[str]:
    unknown = [c for c in exclude if c not in frame.columns]
    if unknown:
        raise InvalidInput(f"no column {_shown(unknown)} to exclude", field="exclude")
    names = [c for c in frame.columns if c != target and c not in exclude]
    if not names:
        raise InvalidInput("no characteristic columns left besides the target", field="data")
    return names


def to_column(s: pl.Series) -> Column:
    """One series as a candidate characteristic (numeric or categorical)."""
    dtype = s.dtype
    if dtype.is_numeric() or dtype in (pl.Boolean, pl.Null):
        values = s.cast(pl.Float64).fill_null(float("nan")).to_numpy()
        return Column(s.name, "numeric", np.ascontiguousarray(values, dtype=np.float64))
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        text = s.cast(pl.String)
        categories = tuple(text.drop_nulls().unique().sort().to_list())
        codes = text.cast(pl.Enum(categories)).to_physical().cast(pl.Int32)
        values32 = codes.fill_null(MISSING_CODE).to_numpy()
        return Column(s.name, "categorical", values32.astype(np.int32, copy=False), categories)
    raise InvalidInput(
        f"column {s.name!r} has type {dtype}, neither number nor text: exclude it or convert it",
        field="data",
    )


def load_table(
    path: Path,
    *,
    target: str,
    bad_label: str | None = None,
    exclude: Sequence[str] = (),
) -> Table:
    frame = read_frame(path)
    bad = bad_flags(frame, target, bad_label)
    names = candidate_names(frame, target, exclude)
    columns = tuple(to_column(frame.get_column(n)) for n in names)
    return Table(path, target, bad_label, bad, columns)
