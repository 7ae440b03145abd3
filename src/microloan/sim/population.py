"""The seeded synthetic population the simulated providers read (issue 3).

``generate(size, seed)`` draws one row per person with ``numpy.random.default_rng(seed)``, whole
columns at a time: a million people take seconds, and the same ``(size, seed, as_of)`` gives the
same frame and the same Parquet file, byte for byte.

Everything starts from a hidden ``creditworthiness`` (standard normal). It sets the person's true
12-month probability of default, ``pd_true = 1 / (1 + exp(-(PD_INTERCEPT - PD_SLOPE · cw)))``
(portfolio mean about 5 %), and it drives, with noise, the channel activity, the credit report and
the income; ``bad`` is one Bernoulli(pd_true) draw, the observed outcome of a past loan. So a model
trained on the observable columns has honest, imperfect signal. Fraud rings (small groups on one
device) are drawn first and get a lower creditworthiness. See ``docs/providers.md`` for the table
of what drives what; ``sim.signals`` draws the provider-facing columns.

Columns are listed in ``COLUMNS``; money is Int64 fen, dates are Date.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from microloan.errors import InvalidInput
from microloan.providers.bins import bins
from microloan.sim import signals, tables
from microloan.sim.vectors import (
    Ints,
    ascii_digits,
    digits_of,
    duplicate_positions,
    id_check_chars,
    luhn_check_digits,
    number_of,
    text_of,
)

REFERENCE_DATE = date(2026, 11, 23)  # "today" of the simulated world unless told otherwise
MAX_SIZE = 10_000_000
PD_INTERCEPT = -3.55
PD_SLOPE = 1.15
RING_SHARE = 0.012  # people in fraud rings (3–8 people on one device)
PAIR_SHARE = 0.02  # people sharing a device in pairs (households): not fraud
_DAYS_PER_YEAR = 365.2425
_MAX_REDRAWS = 50

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Draw:
    """What every step shares: the generator, the size and the simulated "today"."""

    rng: np.random.Generator
    n: int
    as_of: date
    seed: int


def generate(
    size: int, seed: int, *, as_of: date = REFERENCE_DATE, progress: Progress | None = None
) -> pl.DataFrame:
    """One row per person; see the module docstring. ``progress`` hears each step's name."""
    check_size_and_seed(size, seed)
    say = progress or (lambda _step: None)
    d = Draw(np.random.default_rng(seed), size, as_of, seed)
    say("people")
    cw, device_index, ring = _rings_and_creditworthiness(d)
    pd_true = 1.0 / (1.0 + np.exp(-(PD_INTERCEPT - PD_SLOPE * cw)))
    bad = d.rng.random(size) < pd_true
    age = _ages(d, cw)
    say("identities")
    cols: dict[str, pl.Series] = {
        "person_id": pl.Series("person_id", np.arange(size, dtype=np.int64)),
        "creditworthiness": pl.Series("creditworthiness", cw),
        "pd_true": pl.Series("pd_true", pd_true),
        "bad": pl.Series("bad", bad.astype(np.int8)),
    }
    cols |= _identities(d, age)
    say("cards")
    cols["card_number"], cols["bank_code"] = _cards(d)
    say("channels")
    income = signals.true_income_fen(d.rng, cw, age, cols["home_tier"].to_numpy())
    cols["income_monthly_fen"] = pl.Series("income_monthly_fen", income)
    cols |= signals.channels(d.rng, cw, age, income, seed)
    say("credit reports")
    cols |= signals.credit_reports(d.rng, cw, age, income)
    say("devices and locations")
    home = (
        cols["home_lat"].to_numpy(),
        cols["home_lon"].to_numpy(),
        cols["home_district"].to_numpy(),
    )
    cols |= signals.devices(d.rng, device_index, ring, home, seed)
    overdue = cols["report_current_overdue_days"].to_numpy()
    blocked = d.rng.random(size) < 0.002 + 0.2 * (ring >= 0) + 0.1 * (overdue >= 90)
    cols["blocked"] = pl.Series("blocked", blocked)
    frame = pl.DataFrame([cols[name].alias(name) for name in COLUMNS])
    assert frame.height == size
    return frame


def check_size_and_seed(size: int, seed: int) -> None:
    if not 1 <= size <= MAX_SIZE:
        raise InvalidInput(f"must be 1–{MAX_SIZE:,} people (got {size})", field="size")
    if seed < 0:
        raise InvalidInput(f"must be a non-negative integer (got {seed})", field="seed")


def write(frame: pl.DataFrame, path: Path) -> Path:
    """Write the population to Parquet (parent folders created); same frame → same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path, compression="lz4", statistics=False)  # lz4: fastest to load
    return path


def read(path: Path, *, field: str = "population") -> pl.DataFrame:
    """Read a population file and check it has every column (``population.missing`` if absent)."""
    if not path.is_file():
        raise InvalidInput(
            f"no population file at {path} (run `microloan population generate`)",
            code="population.missing",
            field=field,
        )
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        first = (str(exc).strip().splitlines() or ["unreadable"])[0]
        raise InvalidInput(
            f"{path} is not a readable Parquet file ({first})",
            code="population.unreadable",
            field=field,
        ) from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"{path} is not a population file (missing {', '.join(missing[:5])})",
            code="population.schema",
            field=field,
        )
    return frame


def summary(frame: pl.DataFrame) -> dict[str, float | int]:
    """Headline figures of a population: bad rate, shares, fraud-ring devices."""
    n = frame.height
    shared = frame.group_by("device_id").len().filter(pl.col("len") >= 3).height
    return {
        "bad_rate": round(_mean(frame, "bad"), 4),
        "pd_mean": round(_mean(frame, "pd_true"), 4),
        "no_report_share": round(1 - _mean(frame, "report_found"), 4),
        "wechat_users": n - frame["wechat_open_id"].null_count(),
        "qq_users": n - frame["qq_open_id"].null_count(),
        "devices_shared_by_3_or_more": shared,
        "blocked": int(frame["blocked"].sum()),
    }


def _mean(frame: pl.DataFrame, column: str) -> float:
    return float(frame.select(pl.col(column).cast(pl.Float64).mean()).item() or 0.0)


# ---------------------------------------------------------------------------------------------
# people: fraud rings, creditworthiness, ages


def _rings_and_creditworthiness(d: Draw) -> tuple[Floats, Ints, Ints]:
    """Creditworthiness, a device index per person, and the fraud-ring id (-1: none).

    Rings and household pairs share a device; everyone else has their own. Ring members are
    drawn with a lower creditworthiness (fraud shows as default), so the shared-device signal
    carries real information.
    """
    n, rng = d.n, d.rng
    cw = rng.standard_normal(n)
    order = rng.permutation(n)
    target = round(n * RING_SHARE)
    target = max(target, 8) if n >= 50 else target  # small test populations still get a ring
    sizes = rng.integers(3, 9, size=max(1, target // 3 + 1))
    sizes = sizes[np.cumsum(sizes) <= target]
    ring_count, in_rings = len(sizes), int(sizes.sum())
    pairs = min(round(n * PAIR_SHARE / 2), (n - in_rings) // 2)
    ring = np.full(n, -1, dtype=np.int64)
    ring[order[:in_rings]] = np.repeat(np.arange(ring_count), sizes)
    device = np.empty(n, dtype=np.int64)
    device[order[:in_rings]] = ring[order[:in_rings]]
    paired = order[in_rings : in_rings + 2 * pairs]
    device[paired] = ring_count + np.repeat(np.arange(pairs), 2)
    alone = order[in_rings + 2 * pairs :]
    device[alone] = ring_count + pairs + np.arange(len(alone))
    members = ring >= 0
    cw[members] = rng.normal(-1.0, 0.8, size=int(members.sum()))
    return cw, device, ring


def _ages(d: Draw, cw: Floats) -> Floats:
    """Ages in years at ``as_of``: mostly 20–55, about 1.5 % under 18 and 2.5 % over 60."""
    rng, n = d.rng, d.n
    age = rng.normal(33.0, 8.0, n) + 1.5 * cw
    low, high = age < 18.3, age > 59.7  # folded back inside, never piled on one birthday
    age[low] = rng.uniform(18.3, 24.0, int(low.sum()))
    age[high] = rng.uniform(50.0, 59.7, int(high.sum()))
    u = rng.random(n)
    young, old = u < 0.015, u > 0.975
    age[young] = rng.uniform(16.0, 17.9, int(young.sum()))
    age[old] = rng.uniform(60.1, 70.0, int(old.sum()))
    return age


# ---------------------------------------------------------------------------------------------
# identities: names, id numbers, phones, addresses, ID-card validity


def _identities(d: Draw, age: Floats) -> dict[str, pl.Series]:
    rng, n = d.rng, d.n
    districts = tables.DISTRICTS
    weights = np.array([x.weight for x in districts])
    home = rng.choice(len(districts), n, p=weights / weights.sum())
    moved = rng.random(n) < 0.25  # ID issued in another district than the one lived in
    origin = np.where(moved, rng.choice(len(districts), n, p=weights / weights.sum()), home)
    male = rng.random(n) < 0.5
    birth = np.datetime64(d.as_of, "D") - np.floor(age * _DAYS_PER_YEAR).astype("timedelta64[D]")
    cols = {
        "name": _names(rng, male),
        "sex": pl.Series("sex", ["F", "M"]).gather(male.astype(np.int64)),
        "ethnicity": _pick_weighted(rng, tables.ETHNICITIES, n, "ethnicity"),
        "birth_date": pl.Series("birth_date", birth),
        "id_number": _id_numbers(d, origin, birth, male),
        "address": _addresses(rng, origin),
        "id_issuer": pl.Series("id_issuer", [x.police for x in districts]).gather(origin),
        "phone": _phones(d),
        "home_region_code": pl.Series("c", [x.code for x in districts]).gather(home),
        "home_city": pl.Series("c", [x.city for x in districts]).gather(home),
        "home_tier": pl.Series("t", [x.tier for x in districts]).gather(home),
        "home_district": pl.Series("h", home),
        "home_lat": pl.Series(np.round(_centre(home, "lat") + rng.normal(0, 0.02, n), 5)),
        "home_lon": pl.Series(np.round(_centre(home, "lon") + rng.normal(0, 0.02, n), 5)),
    }
    cols |= _id_validity(d, age)
    return cols


def _centre(district: Ints, axis: str) -> Floats:
    values: Floats = np.array([getattr(x, axis) for x in tables.DISTRICTS])[district]
    return values


def _pick_weighted(
    rng: np.random.Generator, table: tuple[tuple[str, float], ...], n: int, name: str
) -> pl.Series:
    w = np.array([weight for _, weight in table])
    idx = rng.choice(len(table), n, p=w / w.sum())
    return pl.Series(name, [value for value, _ in table]).gather(idx)


def _names(rng: np.random.Generator, male: Bools) -> pl.Series:
    n = len(male)
    surname = _pick_weighted(rng, tables.SURNAMES, n, "s")
    m_pool = tables.GIVEN_MALE + tables.GIVEN_SHARED
    f_pool = tables.GIVEN_FEMALE + tables.GIVEN_SHARED
    given = pl.Series("g", m_pool + f_pool)

    def one_char() -> npt.NDArray[np.int64]:
        return np.where(
            male, rng.integers(0, len(m_pool), n), len(m_pool) + rng.integers(0, len(f_pool), n)
        )

    first, second = given.gather(one_char()), given.gather(one_char())
    two = pl.Series(rng.random(n) < 0.7)
    return pl.select(
        pl.concat_str(surname, first, pl.when(two).then(second).otherwise(pl.lit("")))
    ).to_series()


def _id_numbers(d: Draw, origin: Ints, birth: npt.NDArray[np.datetime64], male: Bools) -> pl.Series:
    """GB 11643 numbers: district code, birth date, sequence (odd for men), check character.

    Unique: a sequence that repeats an earlier person's district and birth date is redrawn.
    """
    region = np.array([int(x.code) for x in tables.DISTRICTS], dtype=np.int64)[origin]
    years = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    months = birth.astype("datetime64[M]").astype(np.int64) % 12 + 1
    days = (birth - birth.astype("datetime64[M]")).astype(np.int64) + 1
    stem = region * 10**11 + (years * 10_000 + months * 100 + days) * 1_000
    parity = male.astype(np.int64)
    seq = d.rng.integers(1, 500, d.n) * 2 + parity
    for _ in range(_MAX_REDRAWS):
        again = duplicate_positions(stem + seq)
        if len(again) == 0:
            break
        seq[again] = d.rng.integers(1, 500, len(again)) * 2 + parity[again]
    else:  # pragma: no cover - needs ~500 same-day births in one district per sex
        raise AssertionError("could not draw unique identity numbers")
    first17 = digits_of(stem + seq, 17)
    chars = np.concatenate([ascii_digits(first17), id_check_chars(first17)[:, None]], axis=1)
    return text_of(chars, "id_number")


def _phones(d: Draw) -> pl.Series:
    """Unique mainland mobile numbers: a carrier prefix and eight digits."""
    prefixes = np.array(tables.PHONE_PREFIXES, dtype=np.int64)
    slot = d.rng.choice(len(prefixes) * 10**8, d.n, replace=False).astype(np.int64)
    return pl.Series("phone", prefixes[slot // 10**8] * 10**8 + slot % 10**8).cast(pl.Utf8)


def _addresses(rng: np.random.Generator, origin: Ints) -> pl.Series:
    n = len(origin)
    place = pl.Series("p", [x.place for x in tables.DISTRICTS]).gather(origin)
    street = pl.Series("s", tables.STREETS).gather(rng.integers(0, len(tables.STREETS), n))
    number = pl.Series("n", rng.integers(1, 400, n)).cast(pl.Utf8)
    return pl.select(pl.concat_str(place, street, number, pl.lit("号"))).to_series()


def _id_validity(d: Draw, age: Floats) -> dict[str, pl.Series]:
    """Issue and expiry dates of each person's current ID card (valid on ``as_of``).

    Validity by age at issue: under 16 five years, 16–25 ten, 26–45 twenty, from 46 long-term.
    """
    days_ago = np.floor(d.rng.random(d.n) * 3650)
    years = _validity_years(age - days_ago / _DAYS_PER_YEAR)
    expired = (years > 0) & (days_ago >= years * _DAYS_PER_YEAR - 1)
    days_ago[expired] = np.floor(d.rng.random(int(expired.sum())) * (years[expired] * 360))
    years = _validity_years(age - days_ago / _DAYS_PER_YEAR)
    issued = np.datetime64(d.as_of, "D") - days_ago.astype("timedelta64[D]")
    y = issued.astype("datetime64[Y]").astype(np.int64) + 1970
    m = issued.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (issued - issued.astype("datetime64[M]")).astype(np.int64) + 1
    until_y = y + years
    leap = (until_y % 4 == 0) & ((until_y % 100 != 0) | (until_y % 400 == 0))
    until_day = np.where((m == 2) & (day == 29) & ~leap, 28, day)
    until = pl.select(
        pl.when(pl.Series(years > 0))
        .then(
            pl.date(pl.lit(pl.Series(until_y)), pl.lit(pl.Series(m)), pl.lit(pl.Series(until_day)))
        )
        .otherwise(None)
    ).to_series()
    return {"id_valid_from": pl.Series(issued), "id_valid_until": until}


def _validity_years(age_at_issue: Floats) -> Ints:
    years = np.select([age_at_issue < 16, age_at_issue < 26, age_at_issue < 46], [5, 10, 20], 0)
    return years.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# bank cards


def _cards(d: Draw) -> tuple[pl.Series, pl.Series]:
    """A Luhn-valid card per person under a real BIN (``providers.bins``), unique."""
    entries = bins()
    assert all(len(e.bin) == 6 for e in entries)  # bodies below start at digit 7
    share = tables.BANK_WEIGHTS
    counts: dict[tuple[str, str], int] = {}
    for e in entries:
        counts[e.code, e.card_type] = counts.get((e.code, e.card_type), 0) + 1
    weights = np.array(
        [
            share[e.code]
            * (
                tables.CREDIT_CARD_SHARE
                if e.card_type == "credit"
                else 1 - tables.CREDIT_CARD_SHARE
            )
            / counts[e.code, e.card_type]
            for e in entries
        ]
    )
    pick = d.rng.choice(len(entries), d.n, p=weights / weights.sum())
    prefixes = np.array([[int(c) for c in e.bin] for e in entries], dtype=np.uint8)
    lengths = np.array([e.card_length for e in entries])[pick]
    numbers = pl.Series("card_number", [None] * d.n, dtype=pl.Utf8)
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        body = d.rng.integers(0, 10, (len(rows), length - 7), dtype=np.uint8)
        head = np.concatenate([prefixes[pick[rows]], body], axis=1)
        for _ in range(_MAX_REDRAWS):
            again = duplicate_positions(number_of(head[:, 6:]) + pick[rows] * 10**12)
            if len(again) == 0:
                break
            head[again, 6:] = d.rng.integers(0, 10, (len(again), length - 7), dtype=np.uint8)
        full = np.concatenate([head, luhn_check_digits(head)[:, None]], axis=1)
        numbers.scatter(rows, text_of(ascii_digits(full), "card_number"))
    codes = pl.Series("bank_code", [e.code for e in entries]).gather(pick)
    return numbers, codes


COLUMNS: tuple[str, ...] = (
    "person_id",
    "creditworthiness",
    "pd_true",
    "bad",
    "name",
    "sex",
    "ethnicity",
    "birth_date",
    "id_number",
    "address",
    "id_issuer",
    "id_valid_from",
    "id_valid_until",
    "phone",
    "card_number",
    "bank_code",
    "home_region_code",
    "home_city",
    "home_lat",
    "home_lon",
    "income_monthly_fen",
    "primary_channel",
    *signals.CHANNEL_COLUMNS,
    *signals.REPORT_COLUMNS,
    *signals.DEVICE_COLUMNS,
    "blocked",
)
