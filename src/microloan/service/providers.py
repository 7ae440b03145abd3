"""The providers a decision reads, bundled: in production each is a real adapter behind its port
(docs/providers.md gives the contracts); on the embedded default and in tests they are the
simulated adapters over the synthetic population file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from microloan.access.whitelist import Candidate
from microloan.errors import MicroloanError
from microloan.providers.ports import (
    ChannelActivityPort,
    CreditReportPort,
    DevicePort,
    HolderVerificationPort,
    LocationPort,
    OcrPort,
)

if TYPE_CHECKING:
    from microloan.providers.simulated import SimulatedWorld


@dataclass(frozen=True)
class Providers:
    credit_report: CreditReportPort
    channel_activity: ChannelActivityPort
    device: DevicePort
    location: LocationPort
    holder_verification: HolderVerificationPort
    ocr: OcrPort


def from_world(world: SimulatedWorld) -> Providers:
    """Every port answered by the simulated adapters over one synthetic population."""
    return Providers(
        world.credit_report,
        world.channel_activity,
        world.device,
        world.location,
        world.holder_verification,
        world.ocr,
    )


def simulated(path: str | Path, *, warm: bool = False) -> Providers:
    """The simulated providers over the population file; ``warm`` builds their lookups now
    (a server process), not on the first requests, which would each build them at once."""
    from microloan.providers.simulated import SimulatedWorld  # numpy and polars: only when used

    if not Path(path).is_file():
        raise MicroloanError(
            f"no synthetic population at {path}: run `microloan population generate` "
            "(or set MICROLOAN_POPULATION_PATH)",
            code="providers.population.missing",
            field="population",
        )
    world = SimulatedWorld.load(Path(path))
    return from_world(world.warm() if warm else world)


def channel_candidates(world: SimulatedWorld, channel: str) -> list[Candidate]:
    """A channel's users as its activity data describes them, for the white-list pre-screen."""
    out = []
    for row in world.rows(channel):
        act = world.activity_at(row, channel)
        person = world.person_at(row)
        open_id = person.open_id(channel)
        if act is None or open_id is None:
            continue
        out.append(
            Candidate(
                open_id=open_id,
                months_active=act.months_active,
                active_days_90=act.active_days_90d,
                payments_90d=act.payment_count_90d,
                device_id=person.device_id,
            )
        )
    return out
