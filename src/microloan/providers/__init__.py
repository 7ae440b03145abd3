"""Providers: the ports the credit decision reads its inputs through, the bank-card BIN table,
and (in ``providers.simulated``) adapters backed by the synthetic population.

Importing this package is cheap: the simulated adapters (numpy, polars) load only when
``microloan.providers.simulated`` is imported.
"""

from microloan.providers.bins import Bank, CardType, bank_of
from microloan.providers.ports import (
    BalanceBand,
    ChannelActivity,
    ChannelActivityPort,
    CreditReport,
    CreditReportPort,
    DeviceInfo,
    DevicePort,
    HolderCheck,
    HolderVerificationPort,
    IdCardFields,
    Location,
    LocationPort,
    OcrPort,
    ProviderError,
)

__all__ = [
    "BalanceBand",
    "Bank",
    "CardType",
    "ChannelActivity",
    "ChannelActivityPort",
    "CreditReport",
    "CreditReportPort",
    "DeviceInfo",
    "DevicePort",
    "HolderCheck",
    "HolderVerificationPort",
    "IdCardFields",
    "Location",
    "LocationPort",
    "OcrPort",
    "ProviderError",
    "bank_of",
]
