"""Closure statistics from the read model: 结案率, 按期结案率, 返工率, false-alarm rate, mean time to close.

Definitions (per case = incident, counted on the local day it was first seen):

* filed — every incident; false alarm — ended REJECTED; due (应结案数) — filed minus false alarms
* closed (结案) — reached CLOSED / VERIFIED / SELF_CORRECTED; on time (按期) — closed by its deadline
* rework (返工) — reopened at least once after a resolve the camera did not confirm
* repeat offender — a plate (counted by its key, :func:`nonsite.privacy.plate_key`: the report data never
  holds a plate's text) with at least 2 cases in the period
* closure rate = closed / due; on-time rate = on time / due; rework rate = reworked / due;
  false-alarm rate = false alarms / filed; mean time to close = mean(closed − dispatched) in minutes

Example::

    >>> f = Figures("stray_dog", "流浪犬", filed=10, due=8, closed=6, on_time=5, reworked=1, false_alarms=2,
    ...             minutes_total=120.0)
    >>> f.closure_rate, f.on_time_rate, f.mean_minutes_to_close
    (0.75, 0.625, 20.0)
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from html import escape
from typing import Iterable, Literal, Optional
from zoneinfo import ZoneInfo

from contract import parse_iso
from nonsite.config import City
from nonsite.privacy import plate_key
from nonsite.statistics import mean_minutes, ratio
from web.readmodel import CLOSED_STATES, ReadModel, norm_state

GroupBy = Literal["scenario", "grid", "officer", "camera"]


@dataclass(frozen=True)
class CaseFacts:
    """What the statistics need to know about one case."""

    incident_id: str
    scenario: str
    grid: str
    officer: str
    camera: str
    filed_at: datetime
    started_at: datetime  # dispatch time, when the clock starts
    deadline: Optional[datetime]
    closed_at: Optional[datetime]
    rejected: bool
    reworked: bool
    plate_key: Optional[str] = None  # the keyed hash of the vehicle's plate, never the plate itself

    def key(self, by: str) -> str:
        return {"scenario": self.scenario, "grid": self.grid, "officer": self.officer, "camera": self.camera}[by]


@dataclass
class Figures:
    group: str
    label: str
    filed: int = 0
    due: int = 0
    closed: int = 0
    on_time: int = 0
    reworked: int = 0
    false_alarms: int = 0
    minutes_total: float = 0.0

    def add(self, case: CaseFacts) -> None:
        self.filed += 1
        if case.rejected:
            self.false_alarms += 1
            return
        self.due += 1
        self.reworked += case.reworked
        if case.closed_at is not None:
            self.closed += 1
            self.on_time += case.deadline is None or case.closed_at <= case.deadline
            self.minutes_total += max(0.0, (case.closed_at - case.started_at).total_seconds() / 60)

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

    def as_dict(self) -> dict:
        return {"group": self.group, "label": self.label, "filed": self.filed, "due": self.due,
                "closed": self.closed, "on_time": self.on_time, "reworked": self.reworked,
                "false_alarms": self.false_alarms, "closure_rate": self.closure_rate,
                "on_time_rate": self.on_time_rate, "rework_rate": self.rework_rate,
                "false_alarm_rate": self.false_alarm_rate, "mean_minutes_to_close": self.mean_minutes_to_close}


# ------------------------------------------------------------------ facts from the read model
def case_facts(city: City, model: ReadModel) -> list[CaseFacts]:
    facts = []
    for incident in model.all_incidents():
        tasks = model.tasks_of_incident(incident.incident_id)
        history = model.history(incident.incident_id)
        filed_at = parse_iso(incident.first_seen)
        dispatched = [parse_iso(t.assigned_at) for t in tasks]
        deadline = incident.deadline or (tasks[0].deadline if tasks else None)
        scenario = city.scenario(incident.scenario)
        if deadline:
            deadline_at: Optional[datetime] = parse_iso(deadline)
        else:
            deadline_at = filed_at + timedelta(minutes=scenario.sla_minutes) if scenario else None
        state = norm_state(incident.state)
        closing = [e for e in history if e.applied and norm_state(e.to_state) in CLOSED_STATES]
        closed_at = parse_iso(closing[-1].at) if closing else (
            parse_iso(incident.updated_at) if state in CLOSED_STATES else None)
        reworked = incident.reopen_count > 0 or any(
            e.applied and norm_state(e.to_state) == "REOPENED" for e in history)
        officer = incident.officer_id or (tasks[-1].officer_id if tasks else "") or ""
        facts.append(CaseFacts(incident.incident_id, incident.scenario, incident.grid_id, officer,
                               incident.camera_id, filed_at, min(dispatched) if dispatched else filed_at,
                               deadline_at, closed_at if state != "REJECTED" else None, state == "REJECTED",
                               reworked, plate_key(incident.plate) if incident.plate else None))
    return facts


def labels(city: City, by: str) -> dict[str, str]:
    if by == "scenario":
        return {s.id: f"{s.label_zh} {s.label_en}" for s in city.scenarios}
    if by == "grid":
        return {g.id: g.name for g in city.grids}
    if by == "officer":
        return {o.id: o.name for o in city.officers}
    return {c.id: c.name for c in city.cameras}


# ------------------------------------------------------------------ aggregation
@dataclass(frozen=True)
class Period:
    first: date
    last: date
    tz: ZoneInfo

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def covers(self, moment: datetime) -> bool:
        return self.first <= self.local_day(moment) <= self.last

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


def in_period(facts: Iterable[CaseFacts], period: Period) -> list[CaseFacts]:
    return [f for f in facts if period.covers(f.filed_at)]


def summarise(facts: Iterable[CaseFacts], by: str, names: dict[str, str]) -> tuple[list[Figures], Figures]:
    """Figures per group (sorted by group) and the total."""
    groups: dict[str, Figures] = {}
    total = Figures("total", "合计 Total")
    for case in facts:
        key = case.key(by) or "-"
        groups.setdefault(key, Figures(key, names.get(key, key))).add(case)
        total.add(case)
    return [groups[k] for k in sorted(groups)], total


def summarise_for(city: City, facts: Iterable[CaseFacts], by: str) -> tuple[list[Figures], Figures]:
    """:func:`summarise` with the city's names for the groups."""
    return summarise(facts, by, labels(city, by))


def daily(facts: Iterable[CaseFacts], period: Period) -> list[dict]:
    by_day = {day: Figures(day.isoformat(), day.isoformat()) for day in period.days()}
    for case in facts:
        day = period.local_day(case.filed_at)
        if day in by_day:
            by_day[day].add(case)
    return [{"day": f.group, "filed": f.filed, "due": f.due, "closed": f.closed, "on_time": f.on_time,
             "closure_rate": f.closure_rate} for f in by_day.values()]


@dataclass
class Ranking:
    min_sample: int
    ranked: list[Figures] = field(default_factory=list)
    unranked: list[Figures] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"min_sample": self.min_sample,
                "ranked": [{"rank": i + 1, **f.as_dict()} for i, f in enumerate(self.ranked)],
                "unranked": [f.as_dict() for f in self.unranked]}


def ranking(rows: list[Figures], min_sample: int) -> Ranking:
    """Rank by closure, then on-time rate, then speed — only groups with at least ``min_sample`` due cases."""
    result = Ranking(min_sample)
    for row in rows:
        (result.ranked if row.due >= min_sample else result.unranked).append(row)
    result.ranked.sort(key=lambda f: (-(f.closure_rate or 0), -(f.on_time_rate or 0),
                                      f.mean_minutes_to_close if f.mean_minutes_to_close is not None else 1e9))
    result.unranked.sort(key=lambda f: -f.due)
    return result


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


def repeat_offenders(facts: Iterable[CaseFacts], min_incidents: int = 2) -> list[RepeatOffender]:
    """Plates (by key) with at least ``min_incidents`` cases, most cases first; false alarms do not count."""
    by_key: dict[str, list[CaseFacts]] = {}
    for case in facts:
        if case.plate_key and not case.rejected:
            by_key.setdefault(case.plate_key, []).append(case)
    rows = [RepeatOffender(key, len(cases), sorted({c.scenario for c in cases}),
                           min(c.filed_at for c in cases), max(c.filed_at for c in cases))
            for key, cases in by_key.items() if len(cases) >= min_incidents]
    rows.sort(key=lambda r: (-r.incidents, -r.last_seen.timestamp(), r.plate_key))
    return rows


CSV_COLUMNS = ("group", "label", "filed", "due", "closed", "on_time", "reworked", "false_alarms", "closure_rate",
               "on_time_rate", "rework_rate", "false_alarm_rate", "mean_minutes_to_close")


def to_csv(rows: list[Figures], total: Figures) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in [*rows, total]:
        writer.writerow({k: "" if v is None else v for k, v in row.as_dict().items()})
    return out.getvalue()


# ------------------------------------------------------------------ the daily trend chart
def trend_svg(days: list[dict], width: int = 720, height: int = 220) -> str:
    """Bars: cases filed per day; line: closure rate (right axis, 0-100%).  Plain SVG, no script."""
    pad_l, pad_r, pad_t, pad_b = 36, 40, 14, 34
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    top = max([d["filed"] for d in days] + [1])
    step = plot_w / max(len(days), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="每日趋势 daily trend" class="trend" font-size="11" font-family="sans-serif">',
             f'<rect x="{pad_l}" y="{pad_t}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>']
    for fraction in (0.5, 1.0):
        y = pad_t + plot_h * (1 - fraction)
        parts.append(f'<line x1="{pad_l}" x2="{pad_l + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        parts.append(f'<text x="{pad_l - 4}" y="{y + 4:.1f}" text-anchor="end">{round(top * fraction)}</text>')
        parts.append(f'<text x="{pad_l + plot_w + 4}" y="{y + 4:.1f}">{int(fraction * 100)}%</text>')
    points = []
    label_every = max(1, len(days) // 10)
    for i, day in enumerate(days):
        x = pad_l + i * step
        bar_h = plot_h * day["filed"] / top
        parts.append(f'<rect class="bar" x="{x + step * 0.15:.1f}" y="{pad_t + plot_h - bar_h:.1f}" '
                     f'width="{step * 0.7:.1f}" height="{bar_h:.1f}" fill="#8fb3d9">'
                     f'<title>{escape(day["day"])}: {day["filed"]} filed, {day["closed"]} closed</title></rect>')
        if day["closure_rate"] is not None:
            points.append(f'{x + step / 2:.1f},{pad_t + plot_h * (1 - day["closure_rate"]):.1f}')
        if i % label_every == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{height - pad_b + 14}" text-anchor="middle">'
                         f'{escape(day["day"][5:])}</text>')
    if points:
        parts.append(f'<polyline class="rate" points="{" ".join(points)}" fill="none" stroke="#c0392b" '
                     f'stroke-width="2"/>')
        parts.extend(f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" fill="#c0392b"/>'
                     for p in points)
    parts.append(f'<text x="{pad_l}" y="{height - 4}">▮ 立案数 filed</text>'
                 f'<text x="{pad_l + 110}" y="{height - 4}" fill="#c0392b">— 结案率 closure rate</text></svg>')
    return "".join(parts)


def month_period(month: str, tz: ZoneInfo) -> Period:
    """``"2026-11"`` -> the whole month; raises ValueError for anything else."""
    year, number = (int(part) for part in month.split("-"))
    first = date(year, number, 1)
    following = date(year + (number == 12), number % 12 + 1, 1)
    return Period(first, following - timedelta(days=1), tz)
