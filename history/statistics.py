"""The closure figures, counted in the database: 结案率, 按期结案率, 返工率, false-alarm rate, time to close.

The one statistics path: the web reports and ``nonsite report`` both call these functions on the same table
(``cases``, whose counted facts :mod:`history.facts` derives). Definitions, written once in docs/history.md:
a case counts in the period of its filing day (local time); an alarm awaiting review or dismissed in review
is no filed case, counted apart (``awaiting_review``, ``dismissed_in_review``) on the day it was seen; due =
filed − false alarms; closure rate = closed / due; on-time rate = closed by the deadline / due; rework rate
= reopened at least once / due; false-alarm rate = false alarms / filed; mean time to close = minutes from
filing to closing, averaged over the closed cases (:mod:`nonsite.statistics`).

Example::

    >>> from datetime import date
    >>> from history.database import open_database
    >>> rows, total = summarise(open_database(":memory:"), Period(date(2026, 11, 1), date(2026, 11, 30)), "grid")
    >>> rows, total.filed, total.closure_rate
    ([], 0, None)
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, Optional

from sqlalchemy import Engine, and_, case, func, literal, not_, or_, select

from history import schema
from history.facts import UNFILED_STATES, as_utc
from nonsite.statistics import mean_minutes, ratio

GroupBy = Literal["scenario", "grid", "officer", "camera"]
NOBODY = "-"  # the group of cases no officer ever held


@dataclass(frozen=True)
class Period:
    """The local days ``first`` to ``last``, both included."""

    first: date
    last: date

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


@dataclass
class Figures:
    group: str
    label: str
    filed: int = 0
    false_alarms: int = 0
    closed: int = 0
    on_time: int = 0
    reworked: int = 0
    minutes_total: float = 0.0
    dismissed_in_review: int = 0  # alarms an operator dismissed before dispatch: false alarms that never became cases
    awaiting_review: int = 0  # alarms no operator has decided yet

    @property
    def due(self) -> int:
        return self.filed - self.false_alarms

    @property
    def closure_rate(self) -> Optional[float]:
        return ratio(self.closed, self.due)

    @property
    def on_time_rate(self) -> Optional[float]:
        return ratio(self.on_time, self.due)

    @property
    def rework_rate(self) -> Optional[float]:
        return ratio(self.reworked, self.due)

    @property
    def false_alarm_rate(self) -> Optional[float]:
        return ratio(self.false_alarms, self.filed)

    @property
    def mean_minutes_to_close(self) -> Optional[float]:
        return mean_minutes(self.minutes_total, self.closed)

    def plus(self, other: "Figures") -> None:
        for name in ("filed", "false_alarms", "closed", "on_time", "reworked", "minutes_total", "dismissed_in_review",
                     "awaiting_review"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict:
        return {"group": self.group, "label": self.label, "filed": self.filed, "due": self.due,
                "closed": self.closed, "on_time": self.on_time, "reworked": self.reworked,
                "false_alarms": self.false_alarms, "closure_rate": self.closure_rate,
                "on_time_rate": self.on_time_rate, "rework_rate": self.rework_rate,
                "false_alarm_rate": self.false_alarm_rate, "mean_minutes_to_close": self.mean_minutes_to_close,
                "dismissed_in_review": self.dismissed_in_review, "awaiting_review": self.awaiting_review}


def _counted() -> list[Any]:
    """The sums every figure is derived from, as SQL expressions over ``cases``."""
    cases = schema.cases.c
    counted = and_(not_(cases.rejected), cases.closed_at.is_not(None))

    def total(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)
    return [total(cases.state.not_in(sorted(UNFILED_STATES))).label("filed"),
            total(cases.rejected).label("false_alarms"),
            total(counted).label("closed"),
            total(and_(counted, or_(cases.deadline_at.is_(None), cases.closed_at <= cases.deadline_at)))
            .label("on_time"),
            total(and_(not_(cases.rejected), cases.reworked)).label("reworked"),
            func.coalesce(func.sum(case((counted, cases.minutes_to_close), else_=0.0)), 0.0).label("minutes"),
            total(cases.state == "DISMISSED").label("dismissed"),
            total(cases.state == "AWAITING_REVIEW").label("awaiting")]


def _group_column(by: str) -> Any:
    cases = schema.cases.c
    columns = {"scenario": cases.scenario, "grid": cases.grid_id, "camera": cases.camera_id,
               "officer": func.coalesce(cases.officer_id, literal(NOBODY))}
    if by not in columns:
        raise ValueError(f"by: must be one of {', '.join(columns)}, got {by!r}")
    return columns[by]


def _in(period: Period) -> Any:
    return schema.cases.c.filed_day.between(period.first.isoformat(), period.last.isoformat())


def _figures(group: str, label: str, row: Any) -> Figures:
    return Figures(group, label, int(row.filed), int(row.false_alarms), int(row.closed), int(row.on_time),
                   int(row.reworked), round(float(row.minutes), 2), int(row.dismissed), int(row.awaiting))


def summarise(engine: Engine, period: Period, by: str, names: Optional[dict[str, str]] = None
              ) -> tuple[list[Figures], Figures]:
    """Figures per group (sorted by group) of the cases filed in the period, and their total."""
    names = names or {}
    group = _group_column(by).label("grp")
    query = select(group, *_counted()).where(_in(period)).group_by(group).order_by(group)
    total = Figures("total", "合计 Total")
    rows = []
    with engine.connect() as connection:
        for row in connection.execute(query):
            rows.append(_figures(row.grp, names.get(row.grp, row.grp), row))
            total.plus(rows[-1])
    total.minutes_total = round(total.minutes_total, 2)
    return rows, total


def daily(engine: Engine, period: Period) -> list[dict]:
    """Per day of the period (every day, none left out): filed, due, closed, on time, closure rate."""
    day = schema.cases.c.filed_day
    query = select(day, *_counted()).where(_in(period)).group_by(day)
    with engine.connect() as connection:
        found = {row.filed_day: _figures(row.filed_day, row.filed_day, row) for row in connection.execute(query)}
    days = [found.get(d.isoformat(), Figures(d.isoformat(), d.isoformat())) for d in period.days()]
    return [{"day": f.group, "filed": f.filed, "due": f.due, "closed": f.closed, "on_time": f.on_time,
             "closure_rate": f.closure_rate, "dismissed_in_review": f.dismissed_in_review} for f in days]


@dataclass
class RepeatOffender:
    plate_key: str
    incidents: int
    scenarios: list[str]
    first_seen: datetime
    last_seen: datetime

    def as_dict(self) -> dict:
        return {"plate_key": self.plate_key, "incidents": self.incidents, "scenarios": self.scenarios,
                "first_seen": self.first_seen.isoformat(), "last_seen": self.last_seen.isoformat()}


def repeat_offenders(engine: Engine, period: Period, min_incidents: int = 2) -> list[RepeatOffender]:
    """Plates (by their key, never the text) with at least ``min_incidents`` cases that were not false alarms."""
    cases = schema.cases.c
    kept = and_(_in(period), cases.plate_key.is_not(None), not_(cases.rejected))
    repeated = select(cases.plate_key).where(kept).group_by(cases.plate_key) \
        .having(func.count() >= min_incidents).subquery()
    query = select(cases.plate_key, cases.scenario, cases.first_seen) \
        .where(kept, cases.plate_key.in_(select(repeated.c.plate_key)))
    by_key: dict[str, list[Any]] = {}
    with engine.connect() as connection:
        for row in connection.execute(query):
            by_key.setdefault(row.plate_key, []).append(row)
    rows = [RepeatOffender(key, len(found), sorted({r.scenario for r in found}),
                           as_utc(min(r.first_seen for r in found)), as_utc(max(r.first_seen for r in found)))
            for key, found in by_key.items()]
    rows.sort(key=lambda r: (-r.incidents, -r.last_seen.timestamp(), r.plate_key))
    return rows
