"""Serving a points scorecard: load an exported artifact and score one applicant.

Standard library only, so that the decision path imports in about a millisecond and scores a row
in microseconds; the training side (``microloan.modeling``) writes the artifact this module reads.
The format, ``microloan.scorecard/1``, is a contract any serving engine can implement
(docs/models.md):

- ``characteristics`` in order; each has a ``kind`` (``numeric`` or ``categorical``), regular
  ``bins`` and a ``missing`` bin, each bin with its ``label``, ``woe``, integer ``points``,
  training ``count`` and ``event_rate`` (share of bad).
- numeric: ``splits`` are ascending upper split points, ``len(bins) - 1`` of them; bin ``i``
  holds ``splits[i-1] <= x < splits[i]`` (right-open, as optbinning bins), the first bin is
  open below and the last open above. A missing value (no key, ``None``, NaN) takes the
  ``missing`` bin.
- categorical: each regular bin lists its ``categories`` (strings; a non-string value is
  compared as ``str(value)``). A category not seen in training takes the points of the regular
  bin with the lowest points (ties: the first such bin) — the conservative choice, reported
  with the label ``"unseen"``.
- the score is the sum of the points (the intercept is already spread over the
  characteristics); ``ln(good:bad odds) = (score - offset) / factor`` with
  ``factor = pdo / ln 2`` and ``offset = base_score - factor * ln(base_odds)``, so
  ``pd = 1 / (1 + exp((score - offset) / factor))``.
- reason codes: the characteristics that lost points against their own best bin, largest loss
  first (ties in characteristic order), at most ``MAX_REASONS``, each code the characteristic's
  name.
- ``version`` is ``"<channel or all>-<first 12 hex of sha256>"`` of the canonical JSON of the
  artifact without ``version`` and ``trained_at``; :meth:`Scorecard.load` checks it.
"""

from __future__ import annotations

import hashlib
import json
import math
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from microloan.errors import InvalidInput, NotFound

FORMAT = "microloan.scorecard/1"
ARTIFACT_FILE = "scorecard.json"
MAX_REASONS = 4
MISSING_LABEL = "missing"
UNSEEN_LABEL = "unseen"
UNHASHED_KEYS = ("version", "trained_at")
CONSISTENCY_TOLERANCE = 1e-5

Kind = Literal["numeric", "categorical"]
Value = float | int | str | None


@dataclass(frozen=True, slots=True)
class Bin:
    """One bin: what it holds (``categories`` for categorical bins) and what it is worth."""

    label: str
    woe: float
    points: int
    count: int
    event_rate: float
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Characteristic:
    """A binned characteristic; ``splits`` for numeric ones, ``Bin.categories`` for
    categorical ones."""

    name: str
    kind: Kind
    bins: tuple[Bin, ...]
    missing: Bin
    splits: tuple[float, ...] = ()
    coefficient: float = 0.0
    # Derived once for scoring, not part of the artifact.
    category_bin: Mapping[str, int] = field(init=False, repr=False, compare=False)
    unseen_bin: int = field(init=False, repr=False, compare=False)
    best_points: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_characteristic(self)
        lookup = {c: i for i, b in enumerate(self.bins) for c in b.categories}
        points = [b.points for b in self.bins]
        object.__setattr__(self, "category_bin", lookup)
        object.__setattr__(self, "unseen_bin", points.index(min(points)))
        object.__setattr__(self, "best_points", max(*points, self.missing.points))

    def bin_for(self, value: Value) -> tuple[str, int]:
        """The label and points of the bin ``value`` falls in."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return self.missing.label, self.missing.points
        if self.kind == "numeric":
            if not isinstance(value, (int, float)):
                raise InvalidInput(
                    f"must be a number or missing, got {type(value).__name__} {value!r}",
                    field=self.name,
                )
            chosen = self.bins[bisect_right(self.splits, value)]
            return chosen.label, chosen.points
        index = self.category_bin.get(value if isinstance(value, str) else str(value))
        if index is None:
            return UNSEEN_LABEL, self.bins[self.unseen_bin].points
        chosen = self.bins[index]
        return chosen.label, chosen.points


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """One applicant's score: total, PD, points and bin per characteristic, reason codes."""

    version: str
    score: int
    pd: float
    points: dict[str, int]
    bins: dict[str, str]
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Scorecard:
    """An exported scorecard, checked on construction; ``score`` a row, ``to_dict`` it back."""

    version: str
    channel: str | None
    target: str
    bad_label: str | None
    pdo: float
    base_score: float
    base_odds: float
    offset: float
    factor: float
    intercept: float
    characteristics: tuple[Characteristic, ...]
    trained_at: str | None = None
    training: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_scaling(self)
        names = [c.name for c in self.characteristics]
        if len(set(names)) != len(names):
            raise InvalidInput("characteristic names repeat", field="model")

    # -- loading and exporting ------------------------------------------------------------

    @classmethod
    def load(cls, dir_or_file: Path) -> Scorecard:
        """Read ``scorecard.json`` (or the file given) and check its version against its
        content."""
        path = dir_or_file / ARTIFACT_FILE if dir_or_file.is_dir() else dir_or_file
        if not path.is_file():
            raise NotFound(f"no scorecard artifact at {path}", field="model")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"cannot read {path}: {exc}", field="model") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{path} is not a scorecard object", field="model")
        card = cls.from_dict(data)
        expected = version_of(data)
        if card.version != expected:
            raise InvalidInput(
                f"{path}: version {card.version!r} does not match its content ({expected!r}); "
                "the file was changed after export",
                field="model",
            )
        return card

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Scorecard:
        try:
            if d["format"] != FORMAT:
                raise InvalidInput(f"format {d['format']!r} is not {FORMAT!r}", field="model")
            scaling = d["scaling"]
            return cls(
                version=str(d["version"]),
                channel=d["channel"],
                target=d["target"]["column"],
                bad_label=d["target"]["bad_label"],
                pdo=float(scaling["pdo"]),
                base_score=float(scaling["base_score"]),
                base_odds=float(scaling["base_odds"]),
                offset=float(scaling["offset"]),
                factor=float(scaling["factor"]),
                intercept=float(d["intercept"]),
                characteristics=tuple(_characteristic(c) for c in d["characteristics"]),
                trained_at=d.get("trained_at"),
                training=dict(d.get("training", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed scorecard: {exc!r}", field="model") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "channel": self.channel,
            "target": {"column": self.target, "bad_label": self.bad_label},
            "scaling": {
                "pdo": self.pdo,
                "base_score": self.base_score,
                "base_odds": self.base_odds,
                "offset": self.offset,
                "factor": self.factor,
            },
            "intercept": self.intercept,
            "characteristics": [_characteristic_dict(c) for c in self.characteristics],
            "trained_at": self.trained_at,
            "training": dict(self.training),
        }

    # -- scoring --------------------------------------------------------------------------

    def score(self, row: Mapping[str, Value]) -> ScoreResult:
        """Score one applicant; a key absent from ``row`` is a missing value."""
        points: dict[str, int] = {}
        bins: dict[str, str] = {}
        losses: list[tuple[int, int, str]] = []
        total = 0
        for position, ch in enumerate(self.characteristics):
            label, earned = ch.bin_for(row.get(ch.name))
            points[ch.name] = earned
            bins[ch.name] = label
            total += earned
            lost = ch.best_points - earned
            if lost > 0:
                losses.append((-lost, position, ch.name))
        losses.sort()
        reasons = tuple(name for _, _, name in losses[:MAX_REASONS])
        return ScoreResult(self.version, total, self.pd_for(total), points, bins, reasons)

    def pd_for(self, score: float) -> float:
        """Probability of default at ``score``: ``1 / (1 + exp((score - offset) / factor))``."""
        log_odds_good = (score - self.offset) / self.factor
        if log_odds_good >= 0:
            e = math.exp(-log_odds_good)
            return e / (1.0 + e)
        return 1.0 / (1.0 + math.exp(log_odds_good))


# -- the version: a digest of the content -------------------------------------------------


def content_digest(d: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the artifact without ``version`` and ``trained_at``."""
    content = {k: v for k, v in d.items() if k not in UNHASHED_KEYS}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def version_of(d: Mapping[str, Any]) -> str:
    return f"{d.get('channel') or 'all'}-{content_digest(d)[:12]}"


def scaling_constants(pdo: float, base_score: float, base_odds: float) -> tuple[float, float]:
    """``(offset, factor)``: ``score = offset + factor * ln(good:bad odds)``, with
    ``base_score`` at ``base_odds`` and the odds doubling every ``pdo`` points."""
    factor = pdo / math.log(2)
    return base_score - factor * math.log(base_odds), factor


# -- reading and checking -----------------------------------------------------------------


def _bin(d: Mapping[str, Any]) -> Bin:
    points = d["points"]
    count = d["count"]
    if not isinstance(points, int) or isinstance(points, bool):
        raise InvalidInput(f"bin {d.get('label')!r}: points must be an integer", field="model")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise InvalidInput(f"bin {d.get('label')!r}: count must be an integer ≥ 0", field="model")
    return Bin(
        label=str(d["label"]),
        woe=float(d["woe"]),
        points=points,
        count=count,
        event_rate=float(d["event_rate"]),
        categories=tuple(str(c) for c in d.get("categories", ())),
    )


def _characteristic(d: Mapping[str, Any]) -> Characteristic:
    if d.get("unseen", "lowest_points") != "lowest_points":
        raise InvalidInput(f"unknown unseen-category rule {d['unseen']!r}", field="model")
    return Characteristic(
        name=str(d["name"]),
        kind=d["kind"],
        bins=tuple(_bin(b) for b in d["bins"]),
        missing=_bin(d["missing"]),
        splits=tuple(float(s) for s in d.get("splits", ())),
        coefficient=float(d.get("coefficient", 0.0)),
    )


def _bin_dict(b: Bin, kind: Kind) -> dict[str, Any]:
    out: dict[str, Any] = {
        "label": b.label,
        "woe": b.woe,
        "points": b.points,
        "count": b.count,
        "event_rate": b.event_rate,
    }
    if kind == "categorical":
        out["categories"] = list(b.categories)
    return out


def _characteristic_dict(c: Characteristic) -> dict[str, Any]:
    out: dict[str, Any] = {"name": c.name, "kind": c.kind, "coefficient": c.coefficient}
    if c.kind == "numeric":
        out["splits"] = list(c.splits)
    else:
        out["unseen"] = "lowest_points"
    out["bins"] = [_bin_dict(b, c.kind) for b in c.bins]
    out["missing"] = _bin_dict(c.missing, "numeric")
    return out


def _check_characteristic(c: Characteristic) -> None:
    where = f"characteristic {c.name!r}"
    if c.kind not in ("numeric", "categorical"):
        raise InvalidInput(f"{where}: unknown kind {c.kind!r}", field="model")
    if not c.bins:
        raise InvalidInput(f"{where}: no bins", field="model")
    if c.kind == "numeric":
        if len(c.splits) != len(c.bins) - 1:
            raise InvalidInput(f"{where}: needs len(bins) - 1 splits", field="model")
        if any(not math.isfinite(s) for s in c.splits) or any(
            a >= b for a, b in pairwise(c.splits)
        ):
            raise InvalidInput(f"{where}: splits must be finite and ascending", field="model")
        if any(b.categories for b in c.bins):
            raise InvalidInput(f"{where}: a numeric bin lists categories", field="model")
        return
    if c.splits:
        raise InvalidInput(f"{where}: a categorical characteristic has splits", field="model")
    seen: set[str] = set()
    for b in c.bins:
        if not b.categories or seen.intersection(b.categories):
            raise InvalidInput(
                f"{where}: bin {b.label!r} is empty or repeats a category", field="model"
            )
        seen.update(b.categories)


def _check_scaling(card: Scorecard) -> None:
    if not (card.pdo > 0 and card.base_odds > 0 and card.factor > 0):
        raise InvalidInput("pdo, base_odds and factor must be positive", field="model")
    offset, factor = scaling_constants(card.pdo, card.base_score, card.base_odds)
    if (
        abs(offset - card.offset) > CONSISTENCY_TOLERANCE * max(1.0, abs(offset))
        or abs(factor - card.factor) > CONSISTENCY_TOLERANCE * factor
    ):
        raise InvalidInput(
            "offset and factor do not follow from pdo, base_score and base_odds", field="model"
        )
