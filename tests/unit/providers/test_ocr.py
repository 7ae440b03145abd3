"""The simulated OCR passes the OCR contract; the synthetic card image is a real PNG."""

from __future__ import annotations

import struct
import zlib

import pytest

from microloan.providers.ports import IdCardFields, OcrPort, ProviderError
from microloan.providers.simulated import Faults, SimulatedOcr, SimulatedWorld
from microloan.sim.id_card import HEIGHT, PNG_SIGNATURE, WIDTH, id_card_image, read_png_chunks

from .ocr_contract import OcrContract


def _printed(world: SimulatedWorld, row: int) -> IdCardFields:
    p = world.person_at(row)
    return IdCardFields(
        name=p.name,
        sex=p.sex,
        ethnicity=p.ethnicity,
        birth_date=p.birth_date,
        address=p.address,
        id_number=p.id_number,
        issuing_authority=p.id_issuer,
        valid_from=p.id_valid_from,
        valid_until=p.id_valid_until,
    )


class TestSimulatedOcr(OcrContract):
    @pytest.fixture
    def ocr(self) -> OcrPort:
        return SimulatedOcr()

    @pytest.fixture
    def samples(self, world: SimulatedWorld) -> list[tuple[bytes, IdCardFields]]:
        long_term = world.frame["id_valid_until"].is_null().arg_true()[0]
        rows = [0, 1, 2, int(long_term)]
        return [(id_card_image(world.person_at(r)), _printed(world, r)) for r in rows]


def test_the_card_is_a_well_formed_png(world: SimulatedWorld) -> None:
    image = id_card_image(world.person_at(0))
    assert image.startswith(PNG_SIGNATURE)
    chunks = dict(read_png_chunks(image))
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (width, height, depth, colour) == (WIDTH, HEIGHT, 8, 2)
    assert len(zlib.decompress(chunks[b"IDAT"])) == HEIGHT * (1 + 3 * WIDTH)


def test_a_population_row_works_as_well_as_a_person(world: SimulatedWorld) -> None:
    row = world.frame.row(5, named=True)
    assert id_card_image(row) == id_card_image(world.person_at(5))


def test_a_corrupted_byte_is_caught_by_the_crc(world: SimulatedWorld) -> None:
    image = bytearray(id_card_image(world.person_at(0)))
    image[60] ^= 0xFF  # inside the iTXt chunk
    with pytest.raises(ProviderError) as refused:
        SimulatedOcr().read_id_card(bytes(image))
    assert refused.value.code == "provider.ocr.unreadable"


def test_an_outage_is_unavailable_not_unreadable(world: SimulatedWorld) -> None:
    ocr = SimulatedOcr(faults=Faults(failure_rate=1.0))
    with pytest.raises(ProviderError) as refused:
        ocr.read_id_card(id_card_image(world.person_at(0)))
    assert refused.value.code == "provider.ocr.unavailable"
