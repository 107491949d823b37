"""Closure statistics as incremental counters per day × scenario × grid × officer × camera, pure.

Each counter is added on the (local) day the counted step happened and attributed to the officer
responsible for the case at that moment (``-`` while nobody is).  Rates are derived, never stored, by
the definitions both report paths share (:mod:`nonsite.statistics`); a case reopened at least once
counts as reworked.

Example::

    >>> row = bump({}, "filed"); row = bump(row, "closed"); row = bump(row, "closed_on_time")
    >>> rates(bump(row, "minutes_to_close", 42.0))["closure_rate"]
    1.0
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Iterable, Mapping, Optional

from nonsite.statistics import GROUPS, figures
from stream.domain.dispatch import local_moment

COUNTERS = ("filed", "dispatched", "closed", "closed_on_time", "reopened", "rejected_false_alarm",
            "self_corrected", "escalated", "minutes_to_close")
DIMENSIONS = ("day", *GROUPS)
NOBODY = "-"


@dataclass(frozen=True)
class StatsKey:
    day: str
    scenario: str
    grid: str
    officer: str
    camera: str

    def encode(self) -> str:
        return "|".join((self.day, self.scenario, self.grid, self.officer, self.camera))

    @classmethod
    def decode(cls, text: str) -> "StatsKey":
        return cls(*text.split("|"))


def stats_key(epoch: float, timezone: str, scenario: str, grid: str, officer: Optional[str],
              camera: str) -> StatsKey:
    day = local_moment(epoch, timezone).date().isoformat()
    return StatsKey(day, scenario, grid, officer or NOBODY, camera)


def bump(row: Optional[Mapping[str, float]], counter: str, amount: float = 1) -> dict[str, float]:
    if counter not in COUNTERS:
        raise KeyError(f"unknown counter {counter!r}")
    updated = dict(row or {})
    updated[counter] = updated.get(counter, 0) + amount
    return updated


def rates(row: Mapping[str, float]) -> dict[str, Optional[float]]:
    get = lambda name: float(row.get(name, 0))  # noqa: E731
    return figures(filed=get("filed"), false_alarms=get("rejected_false_alarm"), closed=get("closed"),
                   on_time=get("closed_on_time"), reworked=get("reopened"), minutes_total=get("minutes_to_close"))


def aggregate(rows: Iterable[tuple[StatsKey, Mapping[str, float]]], by: str, day_from: Optional[date] = None,
              day_to: Optional[date] = None) -> list[dict]:
    """Sum the counters of the days in [from, to] per value of ``by`` and add the derived rates."""
    if by not in DIMENSIONS[1:]:
        raise ValueError(f"--by must be one of {', '.join(DIMENSIONS[1:])}")
    totals: dict[str, dict[str, float]] = {}
    for key, row in rows:
        day = date.fromisoformat(key.day)
        if (day_from and day < day_from) or (day_to and day > day_to):
            continue
        group = totals.setdefault(getattr(key, by), {c: 0 for c in COUNTERS})
        for counter in COUNTERS:
            group[counter] += row.get(counter, 0)
    return [{by: name, **{c: round(v, 2) if c == "minutes_to_close" else int(v) for c, v in counters.items()},
             **rates(counters)} for name, counters in sorted(totals.items())]
