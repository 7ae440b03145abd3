"""The provider-facing columns of the synthetic population: channel activity, credit report,
device and location. Each is a noisy function of the hidden creditworthiness ``cw``.

Every function takes the generator and whole columns, and returns named ``polars.Series``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

from microloan.sim import tables
from microloan.sim.vectors import Ints, hex_ids, mix64

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

CHANNELS: tuple[str, ...] = ("wechat", "qq")
OPEN_ID_PREFIX = {"wechat": "wx_", "qq": "qq_"}
ACTIVITY_FIELDS: tuple[str, ...] = (
    "months_active",
    "active_days_90d",
    "payment_count_90d",
    "payment_volume_90d_fen",
    "contacts",
    "income_estimate_monthly_fen",
    "balance_band",
)
CHANNEL_COLUMNS: tuple[str, ...] = tuple(
    f"{c}_{f}" for c in CHANNELS for f in ("open_id", *ACTIVITY_FIELDS)
)
REPORT_FIELDS: tuple[str, ...] = (
    "found",
    "accounts",
    "open_accounts",
    "total_balance_fen",
    "monthly_obligations_fen",
    "current_overdue_days",
    "current_overdue_fen",
    "overdue_months_24m",
    "worst_dpd_24m",
    "queries_3m",
    "months_since_oldest_account",
)
REPORT_COLUMNS: tuple[str, ...] = tuple(f"report_{f}" for f in REPORT_FIELDS)
DEVICE_COLUMNS: tuple[str, ...] = (
    "device_id",
    "device_fingerprint",
    "device_os",
    "device_os_version",
    "device_emulator",
    "device_rooted",
    "fraud_ring",
    "location_lat",
    "location_lon",
    "location_city",
    "location_region_code",
)
BALANCE_BANDS = ("none", "low", "medium", "high")
_FEN_PER_YUAN = 100
# months since launch a channel account can have on the reference date (QQ 1999, WeChat 2011)
_CHANNEL_MAX_MONTHS = {"wechat": 180, "qq": 320}
_CHANNEL_LEVEL = {"wechat": 0.0, "qq": -0.8}  # QQ is used less for payments and daily life


def _sigmoid(x: Floats) -> Floats:
    result: Floats = 1.0 / (1.0 + np.exp(-x))
    return result


def _key(seed: int, salt: int) -> int:
    return (seed * 0x9E3779B97F4A7C15 + salt) & 0xFFFF_FFFF_FFFF_FFFF


def true_income_fen(rng: np.random.Generator, cw: Floats, age: Floats, tier: Ints) -> Ints:
    """Monthly income (hidden): log-normal around 5,000 yuan, higher with cw, age to 45, tier-1."""
    log_yuan = (
        np.log(5000.0)
        + 0.30 * cw
        + 0.02 * (np.minimum(age, 45.0) - 30.0)
        + 0.25 * (tier == 1)
        + rng.normal(0.0, 0.45, len(cw))
    )
    yuan = np.clip(np.round(np.exp(log_yuan)), 1500, 200_000)
    fen: Ints = (yuan * _FEN_PER_YUAN).astype(np.int64)
    return fen


# ---------------------------------------------------------------------------------------------
# channels


def channels(
    rng: np.random.Generator, cw: Floats, age: Floats, income: Ints, seed: int
) -> dict[str, pl.Series]:
    """Who has which channel, the primary one, open ids, and each channel's activity.

    Most people have WeChat, fewer QQ (more of the young), some both; everyone has at least one.
    The primary channel's activity reflects cw strongly; a secondary channel's weakly.
    """
    n = len(cw)
    has = {
        "wechat": rng.random(n) < 0.95,
        "qq": rng.random(n) < np.clip(0.8 - 0.02 * (age - 18.0), 0.1, 0.8),
    }
    has["wechat"] |= ~has["qq"]
    qq_first = rng.random(n) < np.clip(0.45 - 0.02 * (age - 18.0), 0.05, 0.45)
    primary_qq = has["qq"] & (~has["wechat"] | qq_first)
    cols = {"primary_channel": pl.Series(["wechat", "qq"]).gather(primary_qq.astype(np.int64))}
    rows = np.arange(n, dtype=np.uint64)
    for number, channel in enumerate(CHANNELS):
        primary = primary_qq if channel == "qq" else ~primary_qq
        activity = _activity(rng, channel, cw, age, income, primary)
        activity["open_id"] = hex_ids(
            mix64(rows, _key(seed, 101 + number)), OPEN_ID_PREFIX[channel], "open_id"
        )
        absent = np.flatnonzero(~has[channel])
        for field, series in activity.items():
            series = series.alias(f"{channel}_{field}")
            cols[series.name] = series.scatter(absent, None) if len(absent) else series
    return cols


def _activity(
    rng: np.random.Generator,
    channel: str,
    cw: Floats,
    age: Floats,
    income: Ints,
    primary: Bools,
) -> dict[str, pl.Series]:
    n = len(cw)
    weight = np.where(primary, 1.0, 0.45)  # how much cw shows through this channel
    level = _CHANNEL_LEVEL[channel] + np.where(primary, 0.0, -1.5)
    relative_income = np.log(income / (6000.0 * _FEN_PER_YUAN))
    max_months = np.clip(np.floor((age - 12.0) * 12.0), 1, _CHANNEL_MAX_MONTHS[channel])
    months = np.clip(
        np.round(max_months * _sigmoid(0.6 + 0.5 * weight * cw + rng.normal(0, 1, n))),
        1,
        max_months,
    )
    active = rng.binomial(90, _sigmoid(2.3 + level + 0.5 * weight * cw + rng.normal(0, 0.7, n)))
    rate = np.exp(3.6 + level + 0.45 * weight * cw + 0.4 * relative_income + rng.normal(0, 0.5, n))
    count = rng.poisson(rate * active / 90.0)
    ticket_fen = np.exp(np.log(6000.0) + 0.5 * relative_income + rng.normal(0, 0.5, n))
    volume = np.round(count * ticket_fen)
    contacts = np.round(np.exp(5.2 + level * 0.8 + 0.2 * weight * cw + rng.normal(0, 0.6, n)))
    noise = np.where(primary, 0.2, 0.4)
    estimate = np.round(income * np.exp(rng.normal(0, 1, n) * noise) / 10_000) * 10_000
    estimate = np.maximum(estimate, 10_000)
    band_score = 0.6 * cw + 0.6 * relative_income + np.where(primary, 0.0, -0.8)
    band = np.searchsorted(np.array([-0.8, 0.4, 1.5]), band_score + rng.normal(0, 0.8, n))
    income_series = pl.Series(estimate.astype(np.int64))
    unknown = np.flatnonzero(count < 5)  # too few payments for the channel to estimate income
    return {
        "months_active": pl.Series(months.astype(np.int64)),
        "active_days_90d": pl.Series(active.astype(np.int64)),
        "payment_count_90d": pl.Series(count.astype(np.int64)),
        "payment_volume_90d_fen": pl.Series(volume.astype(np.int64)),
        "contacts": pl.Series(np.minimum(contacts, 5000).astype(np.int64)),
        "income_estimate_monthly_fen": (
            income_series.scatter(unknown, None) if len(unknown) else income_series
        ),
        "balance_band": pl.Series(BALANCE_BANDS).gather(band),
    }


# ---------------------------------------------------------------------------------------------
# credit report


def credit_reports(
    rng: np.random.Generator, cw: Floats, age: Floats, income: Ints
) -> dict[str, pl.Series]:
    """The credit-report columns; consistent with ``providers.ports.CreditReport``'s checks.

    No record is likely under 25 and independent of cw (a first-time borrower is not a bad
    risk for that alone); delinquency and recent queries rise as cw falls.
    """
    n = len(cw)
    found = (rng.random(n) >= _sigmoid(2.2 - 0.30 * (age - 18.0))) & (age >= 18.0)
    accounts = np.where(
        found, 1 + rng.poisson(np.clip(0.5 + 0.12 * (age - 20.0) + 0.4 * cw, 0.2, 12.0)), 0
    )
    accounts = np.minimum(accounts, 60)
    open_accounts = rng.binomial(accounts, 0.55)
    dti = np.minimum(np.exp(rng.normal(-2.3 - 0.45 * cw, 0.6)), 3.0)
    obligations = np.where(
        open_accounts > 0, np.maximum(np.round(income * dti / 100) * 100, 10_000), 0
    )
    balance = np.round(obligations * rng.uniform(6.0, 36.0, n))
    months_over = np.where(found, np.minimum(rng.poisson(np.exp(-2.0 - 1.1 * cw)), 24), 0)
    worst = np.where(
        months_over > 0,
        np.clip(np.ceil(np.exp(rng.normal(2.6 - 0.5 * cw + 0.15 * months_over, 0.9))), 1, 720),
        0,
    )
    current = (open_accounts > 0) & (rng.random(n) < _sigmoid(-4.4 - 1.3 * cw))
    days = np.where(current, np.clip(np.ceil(np.exp(rng.normal(3.2 - 0.5 * cw, 1.2))), 1, 720), 0)
    overdue_fen = np.where(current, obligations * np.ceil(days / 30.0), 0)
    balance = np.maximum(balance, overdue_fen)
    worst = np.maximum(worst, days)
    months_over = np.where(
        current, np.maximum(months_over, np.minimum(24, np.ceil(days / 30))), months_over
    )
    queries = np.where(
        found, np.minimum(rng.poisson(np.exp(0.1 - 0.55 * cw + rng.normal(0, 0.4, n))), 30), 0
    )
    max_months = np.maximum(1.0, np.floor((age - 18.0) * 12.0))
    history = np.clip(
        np.round(max_months * _sigmoid(0.3 + 0.4 * cw + rng.normal(0, 0.8, n))), 1, max_months
    )
    values = {
        "accounts": accounts,
        "open_accounts": open_accounts,
        "total_balance_fen": balance,
        "monthly_obligations_fen": obligations,
        "current_overdue_days": days,
        "current_overdue_fen": overdue_fen,
        "overdue_months_24m": months_over,
        "worst_dpd_24m": worst,
        "queries_3m": queries,
    }
    cols = {f"report_{k}": pl.Series(f"report_{k}", v.astype(np.int64)) for k, v in values.items()}
    cols["report_found"] = pl.Series("report_found", found)
    oldest = pl.Series("report_months_since_oldest_account", history.astype(np.int64))
    no_account = np.flatnonzero(accounts == 0)
    cols[oldest.name] = oldest.scatter(no_account, None) if len(no_account) else oldest
    return cols


# ---------------------------------------------------------------------------------------------
# devices and locations


def devices(
    rng: np.random.Generator,
    device_index: Ints,
    ring: Ints,
    home: tuple[Floats, Floats, Ints],
    seed: int,
) -> dict[str, pl.Series]:
    """Per-device traits gathered to people: ids, OS, emulator and root flags, location.

    Ring devices are emulators or rooted far more often, and sit at the ring's own place, far
    from most members' homes. Other devices are near their first owner's home, a few far away.
    """
    n_dev = int(device_index.max()) + 1
    ring_device = np.zeros(n_dev, dtype=bool)
    ring_device[device_index[ring >= 0]] = True
    ios = rng.random(n_dev) < np.where(ring_device, 0.1, 0.28)
    emulator = ~ios & (rng.random(n_dev) < np.where(ring_device, 0.35, 0.002))
    rooted = rng.random(n_dev) < np.where(ring_device, 0.3, np.where(ios, 0.003, 0.012))
    android_versions, ios_versions = ("10", "11", "12", "13", "14", "15"), ("15", "16", "17", "18")
    version = np.where(
        ios,
        len(android_versions) + rng.integers(0, len(ios_versions), n_dev),
        rng.integers(0, len(android_versions), n_dev),
    )
    words = np.arange(n_dev, dtype=np.uint64)
    per_device = {
        "device_id": hex_ids(mix64(words, _key(seed, 201)), "dev_", "device_id"),
        "device_fingerprint": hex_ids(mix64(words, _key(seed, 202)), "", "device_fingerprint"),
        "device_os": pl.Series(["android", "ios"]).gather(ios.astype(np.int64)),
        "device_os_version": pl.Series(android_versions + ios_versions).gather(version),
        "device_emulator": pl.Series(emulator),
        "device_rooted": pl.Series(rooted),
    }
    per_device |= _locations(rng, device_index, ring_device, home)
    cols = {name: s.gather(device_index).alias(name) for name, s in per_device.items()}
    fraud_ring = pl.Series("fraud_ring", ring)
    outside = np.flatnonzero(ring < 0)
    cols["fraud_ring"] = fraud_ring.scatter(outside, None) if len(outside) else fraud_ring
    return cols


def _locations(
    rng: np.random.Generator,
    device_index: Ints,
    ring_device: Bools,
    home: tuple[Floats, Floats, Ints],
) -> dict[str, pl.Series]:
    """Where each device is now: unknown for 3 %, far away for 4 % and for rings, else home."""
    n_dev = len(ring_device)
    home_lat, home_lon, home_district = home
    owner = np.empty(n_dev, dtype=np.int64)
    owner[device_index[::-1]] = np.arange(len(device_index) - 1, -1, -1)  # first person wins
    districts = tables.DISTRICTS
    weights = np.array([x.weight for x in districts])
    elsewhere = rng.choice(len(districts), n_dev, p=weights / weights.sum())
    far = ring_device | (rng.random(n_dev) < 0.04)
    place = np.where(far, elsewhere, home_district[owner])
    centre_lat = np.array([x.lat for x in districts])[place]
    centre_lon = np.array([x.lon for x in districts])[place]
    jitter = np.where(far, 0.02, 0.03)
    lat = np.where(far, centre_lat, home_lat[owner]) + rng.normal(0, 1, n_dev) * jitter
    lon = np.where(far, centre_lon, home_lon[owner]) + rng.normal(0, 1, n_dev) * jitter
    unknown = np.flatnonzero(rng.random(n_dev) < 0.03)
    cols = {
        "location_lat": pl.Series(np.round(lat, 5)),
        "location_lon": pl.Series(np.round(lon, 5)),
        "location_city": pl.Series([x.city for x in districts]).gather(place),
        "location_region_code": pl.Series([x.code for x in districts]).gather(place),
    }
    if len(unknown):
        cols = {k: v.scatter(unknown, None) for k, v in cols.items()}
    return cols
