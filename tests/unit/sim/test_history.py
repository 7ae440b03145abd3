"""The training table is ``characteristics`` over the simulated providers, plus ``bad``."""

from __future__ import annotations

from microloan.decisions.features import CHARACTERISTICS, PlatformHistory, characteristics
from microloan.providers.simulated import SimulatedWorld
from microloan.sim.history import training_table
from microloan.sim.population import REFERENCE_DATE


def test_columns_are_the_characteristics_then_bad(world: SimulatedWorld) -> None:
    table = training_table(world)
    assert table.columns == [*CHARACTERISTICS, "bad"]
    assert table.height == world.size
    assert table["bad"].sum() == world.frame["bad"].sum()


def test_a_channel_table_has_one_row_per_user_of_that_channel(world: SimulatedWorld) -> None:
    table = training_table(world, channel="qq")
    assert table.height == world.frame["qq_open_id"].is_not_null().sum()


def test_rows_equal_what_the_ports_give_the_live_decision(world: SimulatedWorld) -> None:
    """Row by row, the table equals ``characteristics`` fed through the adapters' ports."""
    table = training_table(world, channel="wechat")
    rows = world.rows("wechat")
    for position in (0, 1, 17, len(rows) - 1):
        person = world.person_at(rows[position])
        activities = {
            channel: world.channel_activity.activity(channel, open_id)
            for channel in person.channels
            if (open_id := person.open_id(channel)) is not None
        }
        expected = characteristics(
            channel="wechat",
            age=person.age_on(REFERENCE_DATE),
            report=world.credit_report.fetch(person.id_number, person.name),
            activities=activities,
            history=PlatformHistory(),
        )
        assert table.row(position, named=True) == {**expected, "bad": int(person.bad)}
