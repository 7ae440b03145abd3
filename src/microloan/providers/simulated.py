"""Simulated adapters of every port, all reading one loaded synthetic population.

``SimulatedWorld.load(path)`` reads the Parquet file once and builds dict indexes (identity
number, open ids, card numbers, device ids → row), so each lookup is O(1): a dict hit and a few
array reads, never a frame filter. Columns are turned into Python lists or numpy arrays on first
use and kept.

Adapters (attributes of the world): ``credit_report``, ``channel_activity``, ``device``,
``location``, ``holder_verification``, ``ocr``. Each takes an optional ``Faults`` setting (latency,
failure rate) so tests and demos can exercise timeouts; the default is none.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from microloan.providers.ports import (
    BalanceBand,
    ChannelActivity,
    CreditReport,
    DeviceInfo,
    HolderCheck,
    IdCardFields,
    Location,
    provider_error,
)
from microloan.sim import population
from microloan.sim.id_card import read_id_card_png
from microloan.sim.person import PERSON_FIELDS, Person
from microloan.sim.signals import ACTIVITY_FIELDS, CHANNELS, REPORT_FIELDS

_NULL = -1  # stands for a missing integer in the numpy columns
_ACTIVITY_COUNTS = (
    "months_active",
    "active_days_90d",
    "payment_count_90d",
    "payment_volume_90d_fen",
    "contacts",
)
assert set(_ACTIVITY_COUNTS) < set(ACTIVITY_FIELDS)
_NO_RECORD = CreditReport.no_record()


@dataclass(frozen=True, slots=True)
class Faults:
    """Latency and failures a simulated adapter adds to each call (default: none)."""

    latency_ms: int = 0
    failure_rate: float = 0.0  # share of calls that raise ``provider.<port>.unavailable``
    seed: int = 0

    def __post_init__(self) -> None:
        assert self.latency_ms >= 0 and 0.0 <= self.failure_rate <= 1.0


NO_FAULTS = Faults()


class _Columns:
    """The population's columns, converted on first use and kept: integers and flags to numpy
    (a null integer reads as ``-1``), anything else to a Python list."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self._frame = frame
        self._cache: dict[str, Any] = {}

    def ints(self, name: str) -> npt.NDArray[np.int64]:
        if name not in self._cache:
            series = self._frame[name].cast(pl.Int64).fill_null(_NULL)
            self._cache[name] = series.to_numpy()
        result: npt.NDArray[np.int64] = self._cache[name]
        return result

    def present(self, name: str) -> npt.NDArray[np.bool_]:
        """Where the column is not null (or, for a flag column, true)."""
        key = f"present:{name}"
        if key not in self._cache:
            series = self._frame[name]
            flags = series if series.dtype == pl.Boolean else series.is_not_null()
            self._cache[key] = flags.fill_null(False).to_numpy()
        result: npt.NDArray[np.bool_] = self._cache[key]
        return result

    def at(self, name: str, row: int) -> Any:
        """One value (a polars scalar read: well under a microsecond, nothing materialised)."""
        series = self._cache.get(f"series:{name}")
        if series is None:
            series = self._cache[f"series:{name}"] = self._frame[name]
        return series[row]

    def values(self, name: str) -> list[Any]:
        """Any column as a Python list (text, dates, floats with nulls)."""
        key = f"list:{name}"
        if key not in self._cache:
            self._cache[key] = self._frame[name].to_list()
        result: list[Any] = self._cache[key]
        return result


def _index(frame: pl.DataFrame, key: str) -> dict[str, int]:
    """key → row of its first person, nulls left out (lists handed over from polars in bulk)."""
    column = frame[key]
    keys: list[str]
    rows: Sequence[int]
    if column.null_count() == 0:
        keys, rows = column.to_list(), range(len(column))
    else:
        keyed = frame.select(
            pl.col(key), pl.int_range(pl.len(), dtype=pl.Int64).alias("row")
        ).drop_nulls(key)
        keys, rows = keyed[key].to_list(), keyed["row"].to_list()
    # filled from the last row back, so where a key repeats the earliest row is what remains
    return dict(zip(reversed(keys), reversed(rows), strict=True))


class SimulatedWorld:
    """The synthetic population behind every simulated adapter, with O(1) lookups.

    Each index (identity number, open id per channel, card number, device id → row) is built on
    its first use; ``warm()`` builds them all at once, for a server that wants no first-call cost.
    """

    def __init__(self, frame: pl.DataFrame, *, faults: Faults = NO_FAULTS) -> None:
        self.frame = frame
        self.size = frame.height
        self.columns = _Columns(frame)
        self._people = frame.select(PERSON_FIELDS)
        self._indexes: dict[str, dict[str, int]] = {}
        self._shared: dict[str, list[int]] | None = None
        self._reports: tuple[npt.NDArray[np.bool_], list[npt.NDArray[np.int64]]] | None = None
        self._activities: dict[str, tuple[npt.NDArray[np.bool_], list[npt.NDArray[np.int64]]]] = {}
        self.credit_report = SimulatedCreditReport(self, faults=faults)
        self.channel_activity = SimulatedChannelActivity(self, faults=faults)
        self.device = SimulatedDevice(self, faults=faults)
        self.location = SimulatedLocation(self, faults=faults)
        self.holder_verification = SimulatedHolderVerification(self, faults=faults)
        self.ocr = SimulatedOcr(faults=faults)

    @classmethod
    def load(cls, path: str | Path, *, faults: Faults = NO_FAULTS) -> SimulatedWorld:
        """Load a population file (``population.missing`` / ``population.schema`` if unfit)."""
        return cls(population.read(Path(path)), faults=faults)

    def warm(self) -> SimulatedWorld:
        """Build every index now rather than on first use."""
        for key in ("id_number", "card_number", "device_id", *(f"{c}_open_id" for c in CHANNELS)):
            self._index(key)
        self._shared_devices()
        return self

    def __len__(self) -> int:
        return self.size

    def _index(self, key: str) -> dict[str, int]:
        index = self._indexes.get(key)
        if index is None:
            index = self._indexes[key] = _index(self.frame, key)
        return index

    def _shared_devices(self) -> dict[str, list[int]]:
        if self._shared is None:
            devices = self.frame["device_id"]
            rows = np.flatnonzero(devices.is_duplicated().to_numpy()).tolist()
            shared: dict[str, list[int]] = {}
            for row, device_id in zip(rows, devices.gather(rows).to_list(), strict=True):
                shared.setdefault(device_id, []).append(row)
            self._shared = shared
        return self._shared

    # -- people ------------------------------------------------------------------------------

    def row_of_id_number(self, id_number: str) -> int | None:
        return self._index("id_number").get(id_number.strip().upper())

    def row_of_open_id(self, channel: str, open_id: str) -> int | None:
        if channel not in CHANNELS:
            return None
        return self._index(f"{channel}_open_id").get(open_id)

    def row_of_card(self, card_number: str) -> int | None:
        return self._index("card_number").get(card_number.strip())

    def person_at(self, row: int) -> Person:
        assert 0 <= row < self.size, row
        return Person.from_row(self._people.row(row, named=True))

    def person_by_id_number(self, id_number: str) -> Person | None:
        row = self.row_of_id_number(id_number)
        return None if row is None else self.person_at(row)

    def person_by_open_id(self, channel: str, open_id: str) -> Person | None:
        row = self.row_of_open_id(channel, open_id)
        return None if row is None else self.person_at(row)

    def rows(self, channel: str | None = None) -> list[int]:
        """Row positions of everyone, or of everyone who has ``channel``, in person order."""
        if channel is None:
            return list(range(self.size))
        _check_channel(channel, "channel_activity")
        rows: list[int] = np.flatnonzero(self.columns.present(f"{channel}_open_id")).tolist()
        return rows

    def people(self, channel: str | None = None, *, chunk_rows: int = 10_000) -> Iterator[Person]:
        """Everyone (or everyone who has ``channel``) as ``Person`` records, in person order."""
        people = self._people
        if channel is not None:
            _check_channel(channel, "channel_activity")
            people = people.filter(pl.col(f"{channel}_open_id").is_not_null())
        for chunk in people.iter_slices(chunk_rows):
            for row in chunk.iter_rows(named=True):
                yield Person.from_row(row)

    def device_of(self, id_number: str) -> str | None:
        """The device the person applies from (what the app SDK would report)."""
        row = self.row_of_id_number(id_number)
        return None if row is None else str(self.columns.at("device_id", row))

    def people_on_device(self, device_id: str) -> list[int]:
        """Rows of everyone who uses ``device_id`` (one, two for households, more for rings)."""
        shared = self._shared_devices().get(device_id)
        if shared is not None:
            return list(shared)
        row = self._index("device_id").get(device_id)
        return [] if row is None else [row]

    # -- provider answers by row (the adapters and the training table use these) --------------

    def report_at(self, row: int) -> CreditReport:
        found, arrays = self._report_arrays()
        if not found.item(row):
            return _NO_RECORD
        v = [a.item(row) for a in arrays]
        return CreditReport(
            found=True,
            accounts=v[0],
            open_accounts=v[1],
            total_balance_fen=v[2],
            monthly_obligations_fen=v[3],
            current_overdue_days=v[4],
            current_overdue_fen=v[5],
            overdue_months_24m=v[6],
            worst_dpd_24m=v[7],
            queries_3m=v[8],
            months_since_oldest_account=None if v[9] == _NULL else v[9],
        )

    def _report_arrays(self) -> tuple[npt.NDArray[np.bool_], list[npt.NDArray[np.int64]]]:
        if self._reports is None:
            fields = [f for f in REPORT_FIELDS if f != "found"]
            assert fields[-1] == "months_since_oldest_account"
            arrays = [self.columns.ints(f"report_{f}") for f in fields]
            self._reports = (self.columns.present("report_found"), arrays)
        return self._reports

    def activity_at(self, row: int, channel: str) -> ChannelActivity | None:
        has, arrays = self._activity_arrays(channel)
        if not has.item(row):
            return None
        v = [a.item(row) for a in arrays]
        return ChannelActivity(
            channel=channel,
            months_active=v[0],
            active_days_90d=v[1],
            payment_count_90d=v[2],
            payment_volume_90d_fen=v[3],
            contacts=v[4],
            income_estimate_monthly_fen=None if v[5] == _NULL else v[5],
            balance_band=BalanceBand(self.columns.at(f"{channel}_balance_band", row)),
        )

    def _activity_arrays(
        self, channel: str
    ) -> tuple[npt.NDArray[np.bool_], list[npt.NDArray[np.int64]]]:
        if channel not in self._activities:
            c = self.columns
            fields = [*_ACTIVITY_COUNTS, "income_estimate_monthly_fen"]
            self._activities[channel] = (
                c.present(f"{channel}_open_id"),
                [c.ints(f"{channel}_{f}") for f in fields],
            )
        return self._activities[channel]

    def activities_at(self, row: int) -> dict[str, ChannelActivity | None]:
        """Every channel's answer for this person (``None`` where the person lacks it)."""
        return {channel: self.activity_at(row, channel) for channel in CHANNELS}

    def device_at(self, row: int) -> DeviceInfo:
        c = self.columns
        os_name: Literal["android", "ios"] = "ios" if c.at("device_os", row) == "ios" else "android"
        return DeviceInfo(
            device_id=c.at("device_id", row),
            fingerprint=c.at("device_fingerprint", row),
            os=os_name,
            os_version=c.at("device_os_version", row),
            emulator=bool(c.at("device_emulator", row)),
            rooted=bool(c.at("device_rooted", row)),
        )

    def location_at(self, row: int) -> Location | None:
        c = self.columns
        lat = c.at("location_lat", row)
        if lat is None:
            return None
        return Location(
            lat=lat,
            lon=c.at("location_lon", row),
            city=c.at("location_city", row),
            region_code=c.at("location_region_code", row),
        )

    def age_at(self, row: int, on: date) -> int:
        born: date = self.columns.at("birth_date", row)
        had_birthday = (on.month, on.day) >= (born.month, born.day)
        return on.year - born.year - (0 if had_birthday else 1)


def _check_channel(channel: str, port: str) -> None:
    if channel not in CHANNELS:
        raise provider_error(
            port, "unknown_channel", f"no such channel {channel!r} (known: {', '.join(CHANNELS)})"
        )


# ---------------------------------------------------------------------------------------------
# adapters


class _Simulated:
    """What every simulated adapter shares: the latency and failures of its ``Faults``."""

    port = "simulated"

    def __init__(
        self, *, faults: Faults = NO_FAULTS, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.faults = faults
        self._sleep = sleep
        self._random = random.Random(f"{faults.seed}:{self.port}")

    def _call(self) -> None:
        if self.faults.latency_ms:
            self._sleep(self.faults.latency_ms / 1000)
        if self.faults.failure_rate and self._random.random() < self.faults.failure_rate:
            raise provider_error(self.port, "unavailable", "the simulated provider is down")


class SimulatedCreditReport(_Simulated):
    port = "credit_report"

    def __init__(self, world: SimulatedWorld, **options: Any) -> None:
        super().__init__(**options)
        self.world = world

    def fetch(self, id_number: str, name: str) -> CreditReport:
        self._call()
        row = self.world.row_of_id_number(id_number)
        if row is None:
            return CreditReport.no_record()
        if self.world.columns.at("name", row) != name.strip():
            raise provider_error(
                self.port, "name_mismatch", "the name does not match the identity number"
            )
        return self.world.report_at(row)


class SimulatedChannelActivity(_Simulated):
    port = "channel_activity"

    def __init__(self, world: SimulatedWorld, **options: Any) -> None:
        super().__init__(**options)
        self.world = world

    def activity(self, channel: str, open_id: str) -> ChannelActivity | None:
        self._call()
        _check_channel(channel, self.port)
        row = self.world.row_of_open_id(channel, open_id)
        return None if row is None else self.world.activity_at(row, channel)


class SimulatedDevice(_Simulated):
    port = "device"

    def __init__(self, world: SimulatedWorld, **options: Any) -> None:
        super().__init__(**options)
        self.world = world

    def inspect(self, device_id: str) -> DeviceInfo:
        self._call()
        rows = self.world.people_on_device(device_id)
        if not rows:
            raise provider_error(self.port, "unknown", "the device is not registered")
        return self.world.device_at(rows[0])


class SimulatedLocation(_Simulated):
    port = "location"

    def __init__(self, world: SimulatedWorld, **options: Any) -> None:
        super().__init__(**options)
        self.world = world

    def locate(self, device_id: str) -> Location | None:
        self._call()
        rows = self.world.people_on_device(device_id)
        return self.world.location_at(rows[0]) if rows else None


class SimulatedHolderVerification(_Simulated):
    """Matched iff the card is the population's card of the person with that name and number.

    The reserved phone is checked only with ``check_phone=True`` (a real rail checks it).
    """

    port = "holder_verification"

    def __init__(self, world: SimulatedWorld, *, check_phone: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.world = world
        self.check_phone = check_phone

    def verify_holder(self, card_number: str, name: str, id_number: str, phone: str) -> HolderCheck:
        self._call()
        row = self.world.row_of_card(card_number)
        if row is None:
            return HolderCheck(False, "card.unknown")
        c = self.world.columns
        if c.at("id_number", row) != id_number.strip().upper():
            return HolderCheck(False, "holder.id_mismatch")
        if c.at("name", row) != name.strip():
            return HolderCheck(False, "holder.name_mismatch")
        if self.check_phone and c.at("phone", row) != phone.strip():
            return HolderCheck(False, "holder.phone_mismatch")
        return HolderCheck(True, "ok")


class SimulatedOcr(_Simulated):
    """Reads the synthetic ID-card PNGs of ``microloan.sim.id_card``."""

    port = "ocr"

    def read_id_card(self, image: bytes) -> IdCardFields:
        self._call()
        return read_id_card_png(image)
