"""The simulated adapters over one loaded population: lookups, answers, faults."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest

from microloan.errors import InvalidInput
from microloan.providers.ports import ProviderError
from microloan.providers.simulated import (
    Faults,
    SimulatedCreditReport,
    SimulatedHolderVerification,
    SimulatedWorld,
)
from microloan.sim.person import Person


@pytest.fixture(scope="module")
def alice(world: SimulatedWorld) -> Person:
    """Someone with a credit record, both channels and a location."""
    f = world.frame.with_row_index("row")
    row = f.filter(
        pl.col("report_found")
        & pl.col("wechat_open_id").is_not_null()
        & pl.col("qq_open_id").is_not_null()
        & pl.col("location_lat").is_not_null()
    )["row"][0]
    return world.person_at(int(row))


def test_loading_is_fast_and_complete(population_file: Path) -> None:
    started = time.perf_counter()
    world = SimulatedWorld.load(population_file)
    assert time.perf_counter() - started < 1.0
    assert len(world) == 3000


def test_loading_a_missing_file_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as refused:
        SimulatedWorld.load(tmp_path / "missing.parquet")
    assert (refused.value.code, refused.value.field) == ("population.missing", "population")


def test_people_are_found_by_every_key(world: SimulatedWorld, alice: Person) -> None:
    assert world.person_by_id_number(alice.id_number) == alice
    assert world.person_by_id_number(alice.id_number.lower()) == alice
    for channel in ("wechat", "qq"):
        open_id = alice.open_id(channel)
        assert open_id is not None
        assert world.person_by_open_id(channel, open_id) == alice
    assert world.person_by_open_id("qq", alice.wechat_open_id or "") is None
    assert world.person_by_id_number("110101199003070000") is None
    assert world.device_of(alice.id_number) == alice.device_id
    assert alice.person_id in world.people_on_device(alice.device_id)


def test_people_iterates_a_channel_or_everyone(world: SimulatedWorld) -> None:
    qq = list(world.people("qq"))
    assert len(qq) == world.frame["qq_open_id"].is_not_null().sum()
    assert all(p.qq_open_id for p in qq)
    assert sum(1 for _ in world.people()) == len(world)


def test_credit_report(world: SimulatedWorld, alice: Person) -> None:
    report = world.credit_report.fetch(alice.id_number, alice.name)
    assert report.found and report.accounts > 0
    unknown = world.credit_report.fetch("110101199003077777", "无名")
    assert not unknown.found
    with pytest.raises(ProviderError) as refused:
        world.credit_report.fetch(alice.id_number, alice.name + "某")
    assert refused.value.code == "provider.credit_report.name_mismatch"


def test_every_report_and_activity_meets_the_port_checks(world: SimulatedWorld) -> None:
    """Building each answer runs the ports' invariants on every simulated person."""
    for row in range(len(world)):
        report = world.report_at(row)
        assert report.found or report.accounts == 0
        for channel, activity in world.activities_at(row).items():
            assert activity is None or activity.channel == channel


def test_channel_activity(world: SimulatedWorld, alice: Person) -> None:
    activity = world.channel_activity.activity("wechat", alice.wechat_open_id or "")
    assert activity is not None and activity.channel == "wechat"
    assert world.channel_activity.activity("wechat", "wx_0000000000000000") is None
    with pytest.raises(ProviderError) as refused:
        world.channel_activity.activity("weibo", "x")
    assert refused.value.code == "provider.channel_activity.unknown_channel"


def test_device_and_location(world: SimulatedWorld, alice: Person) -> None:
    device = world.device.inspect(alice.device_id)
    assert device.device_id == alice.device_id and device.os in ("android", "ios")
    with pytest.raises(ProviderError) as refused:
        world.device.inspect("dev_unknown")
    assert refused.value.code == "provider.device.unknown"
    where = world.location.locate(alice.device_id)
    assert where is not None and len(where.region_code) == 6
    assert world.location.locate("dev_unknown") is None


def test_shared_devices_list_everyone_on_them(world: SimulatedWorld) -> None:
    counts = world.frame.group_by("device_id").len().filter(pl.col("len") >= 3)
    device_id = counts["device_id"][0]
    rows = world.people_on_device(device_id)
    assert len(rows) == counts["len"][0]
    assert {world.person_at(r).device_id for r in rows} == {device_id}


def test_holder_verification(world: SimulatedWorld, alice: Person) -> None:
    rail = world.holder_verification
    args = (alice.card_number, alice.name, alice.id_number, alice.phone)
    assert rail.verify_holder(*args).matched
    wrong_name = rail.verify_holder(alice.card_number, "王小二", alice.id_number, alice.phone)
    assert (wrong_name.matched, wrong_name.reason) == (False, "holder.name_mismatch")
    other = world.person_at((alice.person_id + 1) % len(world))
    wrong_id = rail.verify_holder(alice.card_number, alice.name, other.id_number, alice.phone)
    assert wrong_id.reason == "holder.id_mismatch"
    unknown = rail.verify_holder("6222020000000000000", alice.name, alice.id_number, alice.phone)
    assert (unknown.matched, unknown.reason) == (False, "card.unknown")
    assert rail.verify_holder(*args[:3], "13800000000").matched  # phone not checked by default
    strict = SimulatedHolderVerification(world, check_phone=True)
    assert strict.verify_holder(*args[:3], "13800000000").reason == "holder.phone_mismatch"


def test_faults_add_latency_and_failures(world: SimulatedWorld, alice: Person) -> None:
    slept: list[float] = []
    slow = SimulatedCreditReport(world, faults=Faults(latency_ms=250), sleep=slept.append)
    slow.fetch(alice.id_number, alice.name)
    assert slept == [0.25]
    down = SimulatedCreditReport(world, faults=Faults(failure_rate=1.0))
    with pytest.raises(ProviderError) as refused:
        down.fetch(alice.id_number, alice.name)
    assert refused.value.code == "provider.credit_report.unavailable"
    flaky = SimulatedCreditReport(world, faults=Faults(failure_rate=0.5, seed=3))
    outcomes = []
    for _ in range(200):
        try:
            flaky.fetch(alice.id_number, alice.name)
            outcomes.append(True)
        except ProviderError:
            outcomes.append(False)
    assert 60 < sum(outcomes) < 140
