"""Synthetic ID-card photos: a small PNG built with the standard library (zlib + struct), with
the card's printed fields in an ``iTXt`` chunk. The simulated OCR reads that chunk back; an image
without it, or one whose bytes do not check out (signature, chunk CRCs), is unreadable.

The fields are stored the way the card prints them (``1990年5月12日``, ``2016.05.12-长期``), so
the reader does the same parsing a real OCR post-processor does.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Mapping
from datetime import date
from typing import Any

from microloan.providers.ports import IdCardFields, ProviderError, provider_error
from microloan.sim.person import Person

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_KEYWORD = b"microloan id card"
WIDTH, HEIGHT = 172, 108  # 85.6 × 54 mm at 2 px/mm
_MAX_CHUNK_BYTES = 1 << 20
_BIRTH_RE = re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日$")
_VALID_RE = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})-(?:(\d{4})\.(\d{2})\.(\d{2})|长期)$")


def id_card_image(person: Person | Mapping[str, Any]) -> bytes:
    """The front and back of ``person``'s ID card as one PNG (fields in an ``iTXt`` chunk)."""
    p = person if isinstance(person, Person) else Person.from_row(person)
    b = p.birth_date
    until = p.id_valid_until.strftime("%Y.%m.%d") if p.id_valid_until else "长期"
    printed = {
        "姓名": p.name,
        "性别": "男" if p.sex == "M" else "女",
        "民族": p.ethnicity,
        "出生": f"{b.year}年{b.month}月{b.day}日",
        "住址": p.address,
        "公民身份号码": p.id_number,
        "签发机关": p.id_issuer,
        "有效期限": f"{p.id_valid_from.strftime('%Y.%m.%d')}-{until}",
    }
    text = json.dumps(printed, ensure_ascii=False).encode("utf-8")
    itxt = TEXT_KEYWORD + b"\x00\x00\x00zh-CN\x00\xe8\xba\xab\xe4\xbb\xbd\xe8\xaf\x81\x00" + text
    return png(extra_chunks=[(b"iTXt", itxt)])


def png(*, extra_chunks: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A small RGB picture of a card (pale background, photo box, text bars) as PNG bytes."""
    background, ink, photo = b"\xe6\xf0\xf7", b"\x5a\x64\x6e", b"\xb4\xbe\xc8"
    rows = []
    for y in range(HEIGHT):
        line = bytearray(background * WIDTH)
        if 20 <= y < 88:
            line[3 * 118 : 3 * 160] = photo * 42
        if y % 12 in (1, 2, 3) and 12 <= y < 96:
            line[3 * 12 : 3 * 100] = ink * 88
        rows.append(b"\x00" + bytes(line))  # filter type 0 (none) per scanline
    header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)
    chunks = [(b"IHDR", header), *(extra_chunks or []), (b"IDAT", zlib.compress(b"".join(rows)))]
    chunks.append((b"IEND", b""))
    return PNG_SIGNATURE + b"".join(_chunk(kind, data) for kind, data in chunks)


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFF_FFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _unreadable(why: str) -> ProviderError:
    return provider_error("ocr", "unreadable", f"the ID-card image cannot be read: {why}")


def read_png_chunks(image: bytes) -> list[tuple[bytes, bytes]]:
    """The chunks of a PNG, checked: signature, lengths, CRCs, IHDR first and IEND last."""
    if not image.startswith(PNG_SIGNATURE):
        raise _unreadable("not a PNG image")
    chunks, at = [], len(PNG_SIGNATURE)
    while at < len(image):
        if at + 12 > len(image):
            raise _unreadable("truncated")
        (length,) = struct.unpack(">I", image[at : at + 4])
        kind, data = image[at + 4 : at + 8], image[at + 8 : at + 8 + length]
        if length > _MAX_CHUNK_BYTES or len(data) != length or at + 12 + length > len(image):
            raise _unreadable("truncated")
        (crc,) = struct.unpack(">I", image[at + 8 + length : at + 12 + length])
        if zlib.crc32(kind + data) & 0xFFFF_FFFF != crc:
            raise _unreadable("corrupted")
        chunks.append((kind, data))
        at += 12 + length
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        raise _unreadable("not a complete PNG image")
    return chunks


def read_id_card_png(image: bytes) -> IdCardFields:
    """The fields of a synthetic ID-card image; ``provider.ocr.unreadable`` otherwise."""
    for kind, data in read_png_chunks(image):
        if kind == b"iTXt" and data.startswith(TEXT_KEYWORD + b"\x00"):
            return _fields(_itxt_text(data))
    raise _unreadable("no ID card found in the picture")


def _itxt_text(data: bytes) -> str:
    try:
        rest = data[len(TEXT_KEYWORD) + 1 :]
        if rest[:2] != b"\x00\x00":  # compressed text is not produced here
            raise ValueError("compressed")
        _language, _translated, text = rest[2:].split(b"\x00", 2)
        return text.decode("utf-8")
    except ValueError:
        raise _unreadable("damaged text") from None


def _fields(text: str) -> IdCardFields:
    try:
        printed = json.loads(text)
        birth = _BIRTH_RE.match(printed["出生"])
        valid = _VALID_RE.match(printed["有效期限"])
        sex = {"男": "M", "女": "F"}[printed["性别"]]
        if birth is None or valid is None:
            raise ValueError("dates")
        y1, m1, d1, y2, m2, d2 = valid.groups()
        return IdCardFields(
            name=str(printed["姓名"]),
            sex="M" if sex == "M" else "F",
            ethnicity=str(printed["民族"]),
            birth_date=date(*(int(g) for g in birth.groups())),
            address=str(printed["住址"]),
            id_number=str(printed["公民身份号码"]),
            issuing_authority=str(printed["签发机关"]),
            valid_from=date(int(y1), int(m1), int(d1)),
            valid_until=date(int(y2), int(m2), int(d2)) if y2 else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise _unreadable("fields missing or illegible") from None
