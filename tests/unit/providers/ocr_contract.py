"""The contract every ``OcrPort`` adapter must pass, as a reusable test class.

Use it by subclassing in a test module and providing two fixtures::

    class TestMyOcr(OcrContract):
        @pytest.fixture
        def ocr(self) -> OcrPort: ...
        @pytest.fixture
        def samples(self) -> list[tuple[bytes, IdCardFields]]: ...  # images and their truth

A real engine is checked with real (consented, test-only) card photos and their transcriptions;
the simulated one with synthetic cards. ``not_a_card`` may be overridden with a real photo that
shows no card.
"""

from __future__ import annotations

from datetime import date

import pytest

from microloan.access.identity import parse_id_number
from microloan.providers.ports import IdCardFields, OcrPort, ProviderError
from microloan.sim.id_card import png

READ_ON = date(2026, 11, 23)


class OcrContract:
    @pytest.fixture
    def ocr(self) -> OcrPort:
        raise NotImplementedError("provide the adapter under test")

    @pytest.fixture
    def samples(self) -> list[tuple[bytes, IdCardFields]]:
        raise NotImplementedError("provide card images and the fields printed on them")

    @pytest.fixture
    def not_a_card(self) -> bytes:
        return png()

    def test_is_an_ocr_port(self, ocr: OcrPort) -> None:
        assert isinstance(ocr, OcrPort)

    def test_reads_every_field_of_every_sample(
        self, ocr: OcrPort, samples: list[tuple[bytes, IdCardFields]]
    ) -> None:
        assert samples, "the contract needs at least one sample"
        for image, printed in samples:
            assert ocr.read_id_card(image) == printed

    def test_fields_agree_with_the_identity_number(
        self, ocr: OcrPort, samples: list[tuple[bytes, IdCardFields]]
    ) -> None:
        for image, _ in samples:
            fields = ocr.read_id_card(image)
            identity = parse_id_number(fields.id_number, on=READ_ON)
            assert identity.birth_date == fields.birth_date
            assert identity.is_male == (fields.sex == "M")
            assert fields.valid_until is None or fields.valid_until > fields.valid_from

    def test_reading_twice_gives_the_same_answer(
        self, ocr: OcrPort, samples: list[tuple[bytes, IdCardFields]]
    ) -> None:
        image, _ = samples[0]
        assert ocr.read_id_card(image) == ocr.read_id_card(image)

    @pytest.mark.parametrize(
        "junk",
        [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n", bytes(range(256)) * 4],
        ids=["empty", "text", "signature-only", "noise"],
    )
    def test_junk_is_unreadable(self, ocr: OcrPort, junk: bytes) -> None:
        self._assert_unreadable(ocr, junk)

    def test_a_picture_without_a_card_is_unreadable(self, ocr: OcrPort, not_a_card: bytes) -> None:
        self._assert_unreadable(ocr, not_a_card)

    def test_a_truncated_card_is_unreadable(
        self, ocr: OcrPort, samples: list[tuple[bytes, IdCardFields]]
    ) -> None:
        image, _ = samples[0]
        self._assert_unreadable(ocr, image[: len(image) // 2])

    @staticmethod
    def _assert_unreadable(ocr: OcrPort, image: bytes) -> None:
        with pytest.raises(ProviderError) as refused:
            ocr.read_id_card(image)
        assert refused.value.code == "provider.ocr.unreadable"
