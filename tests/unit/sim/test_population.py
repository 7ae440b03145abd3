"""The synthetic population: valid identities and cards, reproducible, honest signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from microloan.access.identity import check_phone, luhn_valid, parse_id_number
from microloan.errors import InvalidInput
from microloan.providers.bins import bank_of
from microloan.providers.simulated import SimulatedWorld
from microloan.sim import population, tables
from microloan.sim.population import REFERENCE_DATE, generate

DISTRICT_CODES = {d.code for d in tables.DISTRICTS}


def test_every_id_number_is_valid_and_agrees_with_birth_date_and_sex(frame: pl.DataFrame) -> None:
    for id_number, born, sex in frame.select("id_number", "birth_date", "sex").iter_rows():
        identity = parse_id_number(id_number, on=REFERENCE_DATE)
        assert identity.region_code in DISTRICT_CODES
        assert identity.birth_date == born
        assert identity.is_male == (sex == "M")


def test_every_card_passes_luhn_and_maps_to_its_bank(frame: pl.DataFrame) -> None:
    for card, code in frame.select("card_number", "bank_code").iter_rows():
        assert luhn_valid(card), card
        bank = bank_of(card)
        assert bank.code == code
        assert len(card) == bank.card_length


def test_phones_are_mainland_mobile_numbers(frame: pl.DataFrame) -> None:
    for phone in frame["phone"]:
        assert check_phone(phone) == phone


@pytest.mark.parametrize(
    "column", ["person_id", "id_number", "card_number", "phone", "wechat_open_id", "qq_open_id"]
)
def test_keys_are_unique(frame: pl.DataFrame, column: str) -> None:
    values = frame[column].drop_nulls()
    assert values.n_unique() == len(values)


def test_same_seed_gives_the_same_frame_and_the_same_file(tmp_path: Path) -> None:
    first, second = generate(1500, 42), generate(1500, 42)
    assert first.equals(second)
    a = population.write(first, tmp_path / "a.parquet").read_bytes()
    b = population.write(second, tmp_path / "b.parquet").read_bytes()
    assert a == b


def test_a_different_seed_gives_a_different_population() -> None:
    first, second = generate(1500, 42), generate(1500, 43)
    assert not first.equals(second)
    assert first["id_number"].to_list() != second["id_number"].to_list()
    assert first["wechat_open_id"].drop_nulls()[0] != second["wechat_open_id"].drop_nulls()[0]


def test_file_round_trip_keeps_every_column(frame: pl.DataFrame, tmp_path: Path) -> None:
    path = population.write(frame, tmp_path / "deep" / "pop.parquet")
    assert population.read(path).equals(frame)


def test_reading_a_missing_or_foreign_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as missing:
        population.read(tmp_path / "nope.parquet")
    assert missing.value.code == "population.missing"
    assert missing.value.field == "population"
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(InvalidInput) as junk:
        population.read(tmp_path / "junk.parquet")
    assert junk.value.code == "population.unreadable"
    pl.DataFrame({"x": [1]}).write_parquet(tmp_path / "other.parquet")
    with pytest.raises(InvalidInput) as foreign:
        population.read(tmp_path / "other.parquet")
    assert foreign.value.code == "population.schema"


@pytest.mark.parametrize(
    ("size", "seed", "field"), [(0, 1, "size"), (10_000_001, 1, "size"), (10, -1, "seed")]
)
def test_size_and_seed_are_checked(size: int, seed: int, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        generate(size, seed)
    assert refused.value.field == field


def test_a_single_person_can_be_drawn() -> None:
    one = generate(1, 0)
    assert one.height == 1
    assert one.columns == list(population.COLUMNS)


# ---------------------------------------------------------------------------------------------
# the truth behind the data


def test_bad_rate_is_a_plausible_portfolio_rate(large_frame: pl.DataFrame) -> None:
    assert 0.03 <= float(large_frame["bad"].cast(pl.Float64).mean() or 0) <= 0.08
    assert 0.03 <= float(large_frame["pd_true"].mean() or 0) <= 0.08


def _by_quintile(frame: pl.DataFrame, value: pl.Expr) -> list[float]:
    ranked = frame.with_columns(
        (pl.col("creditworthiness").rank("ordinal") * 5 // (frame.height + 1)).alias("q")
    )
    out = ranked.group_by("q").agg(value.alias("v")).sort("q")
    return [float(v) for v in out["v"]]


def test_bad_rate_falls_as_creditworthiness_rises(large_frame: pl.DataFrame) -> None:
    bad = _by_quintile(large_frame, pl.col("bad").cast(pl.Float64).mean())
    pd_true = _by_quintile(large_frame, pl.col("pd_true").mean())
    assert bad == sorted(bad, reverse=True), bad
    assert pd_true == sorted(pd_true, reverse=True)
    assert bad[0] > 5 * bad[-1]


def test_delinquency_and_queries_are_likelier_at_low_creditworthiness(
    large_frame: pl.DataFrame,
) -> None:
    delinquent = _by_quintile(
        large_frame, (pl.col("report_worst_dpd_24m") > 0).cast(pl.Float64).mean()
    )
    queries = _by_quintile(large_frame, pl.col("report_queries_3m").cast(pl.Float64).mean())
    assert delinquent[0] > 2 * delinquent[-1]
    assert queries[0] > queries[-1]


def test_primary_channel_activity_carries_signal(large_frame: pl.DataFrame) -> None:
    wechat = large_frame.filter(pl.col("primary_channel") == "wechat")
    cw = wechat["creditworthiness"].to_numpy()
    payments = wechat["wechat_payment_count_90d"].cast(pl.Float64).to_numpy()
    assert np.corrcoef(cw, np.log1p(payments))[0, 1] > 0.2


def test_ages_are_mostly_20_to_55_with_some_outside_18_to_60(frame: pl.DataFrame) -> None:
    world = SimulatedWorld(frame)
    ages = np.array([world.age_at(row, REFERENCE_DATE) for row in range(frame.height)])
    assert ((ages >= 20) & (ages <= 55)).mean() > 0.85
    assert (ages < 18).sum() > 0
    assert (ages > 60).sum() > 0


def test_channels_most_have_wechat_fewer_qq_some_both(frame: pl.DataFrame) -> None:
    wechat = frame["wechat_open_id"].is_not_null()
    qq = frame["qq_open_id"].is_not_null()
    assert (wechat | qq).all()
    assert wechat.sum() > qq.sum() > 0
    assert (wechat & qq).sum() > 0
    assert frame["wechat_open_id"].drop_nulls().str.starts_with("wx_").all()
    assert frame["qq_open_id"].drop_nulls().str.starts_with("qq_").all()
    primary_has_it = frame.select(
        pl.when(pl.col("primary_channel") == "wechat")
        .then(pl.col("wechat_open_id").is_not_null())
        .otherwise(pl.col("qq_open_id").is_not_null())
    ).to_series()
    assert primary_has_it.all()


def test_no_credit_record_is_commoner_among_the_young(frame: pl.DataFrame) -> None:
    young = frame.filter(pl.col("birth_date") > pl.date(2001, 1, 1))
    older = frame.filter(pl.col("birth_date") < pl.date(1990, 1, 1))
    young_none = 1 - float(young["report_found"].cast(pl.Float64).mean() or 0)
    older_none = 1 - float(older["report_found"].cast(pl.Float64).mean() or 0)
    assert young_none > 0.3 > 0.1 > older_none


def test_a_few_are_currently_seriously_delinquent(large_frame: pl.DataFrame) -> None:
    share = float((large_frame["report_current_overdue_days"] >= 90).cast(pl.Float64).mean() or 0)
    assert 0.0005 < share < 0.03


def test_fraud_rings_share_devices_and_are_riskier(frame: pl.DataFrame) -> None:
    per_device = frame.group_by("device_id").agg(
        pl.len().alias("people"), pl.col("fraud_ring").first().alias("ring")
    )
    rings = per_device.filter(pl.col("people") >= 3)
    assert rings.height > 0
    assert rings["ring"].is_not_null().all()
    members = frame.filter(pl.col("fraud_ring").is_not_null())
    others = frame.filter(pl.col("fraud_ring").is_null())
    assert float(members["pd_true"].mean() or 0) > 2 * float(others["pd_true"].mean() or 0)
    assert float(members["device_emulator"].cast(pl.Float64).mean() or 0) > float(
        others["device_emulator"].cast(pl.Float64).mean() or 0
    )


def test_devices_sit_mostly_near_home(frame: pl.DataFrame) -> None:
    located = frame.filter(pl.col("location_lat").is_not_null())
    far = ((located["location_lat"] - located["home_lat"]).abs() > 0.3) | (
        (located["location_lon"] - located["home_lon"]).abs() > 0.3
    )
    assert 0.01 < float(far.cast(pl.Float64).mean() or 0) < 0.15
    assert 0 < frame["location_lat"].null_count() < 0.1 * frame.height


def test_blocked_is_rare(frame: pl.DataFrame) -> None:
    assert 0 < int(frame["blocked"].sum()) < 0.02 * frame.height


def test_id_cards_are_valid_on_the_reference_date(frame: pl.DataFrame) -> None:
    assert (frame["id_valid_from"] <= REFERENCE_DATE).all()
    until = frame["id_valid_until"].drop_nulls()
    assert (until > REFERENCE_DATE).all()
    assert 0 < frame["id_valid_until"].null_count() < frame.height  # long-term cards exist


def test_summary_reports_the_headline_figures(frame: pl.DataFrame) -> None:
    figures = population.summary(frame)
    assert figures["devices_shared_by_3_or_more"] > 0
    assert figures["wechat_users"] > figures["qq_users"]
    assert 0 < figures["bad_rate"] < 0.2
