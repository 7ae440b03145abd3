"""The providers a decision reads, bundled: in production each is a real adapter behind its port
(docs/providers.md gives the contracts); on the embedded default and in tests they are the
simulated adapters over the synthetic population file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from microloan.errors import MicroloanError
from microloan.providers.ports import (
    ChannelActivityPort,
    CreditReportPort,
    DevicePort,
    HolderVerificationPort,
    LocationPort,
    OcrPort,
)


@dataclass(frozen=True)
class Providers:
    credit_report: CreditReportPort
    channel_activity: ChannelActivityPort
    device: DevicePort
    location: LocationPort
    holder_verification: HolderVerificationPort
    ocr: OcrPort


def simulated(path: str | Path) -> Providers:
    from microloan.providers.simulated import SimulatedWorld

    if not Path(path).is_file():
        raise MicroloanError(
            f"no synthetic population at {path}: run `microloan population generate` "
            "(or set MICROLOAN_POPULATION_PATH)",
            code="providers.population.missing",
            field="population",
        )
    world = SimulatedWorld.load(Path(path))
    return Providers(
        world.credit_report,
        world.channel_activity,
        world.device,
        world.location,
        world.holder_verification,
        world.ocr,
    )
