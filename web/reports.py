"""The closure reports as supervisors read them: group names, the ranking, CSV, the trend chart, a month.

The figures themselves are counted by :mod:`history.statistics` (the one definition, also behind
``nonsite report``); this module only presents them.

Example::

    >>> rows = [Figures("g1", "Grid 1", filed=12, closed=12), Figures("g2", "Grid 2", filed=12, closed=6)]
    >>> [f.group for f in ranking(rows, min_sample=10).ranked]
    ['g1', 'g2']
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape
from typing import Literal

from sqlalchemy import Engine

from history.statistics import Figures, Period, summarise
from nonsite.config import City

GroupBy = Literal["scenario", "grid", "officer", "camera"]


def labels(city: City, by: str) -> dict[str, str]:
    if by == "scenario":
        return {s.id: f"{s.label_zh} {s.label_en}" for s in city.scenarios}
    if by == "grid":
        return {g.id: g.name for g in city.grids}
    if by == "officer":
        return {o.id: o.name for o in city.officers}
    return {c.id: c.name for c in city.cameras}


def summarise_for(city: City, engine: Engine, period: Period, by: str) -> tuple[list[Figures], Figures]:
    """:func:`history.statistics.summarise` with the city's names for the groups."""
    return summarise(engine, period, by, labels(city, by))


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


CSV_COLUMNS = ("group", "label", "filed", "due", "closed", "on_time", "reworked", "false_alarms", "closure_rate",
               "on_time_rate", "rework_rate", "false_alarm_rate", "mean_minutes_to_close", "dismissed_in_review",
               "awaiting_review")


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


def month_period(month: str) -> Period:
    """``"2026-11"`` -> the whole month; raises ValueError for anything else."""
    year, number = (int(part) for part in month.split("-"))
    first = date(year, number, 1)
    following = date(year + (number == 12), number % 12 + 1, 1)
    return Period(first, following - timedelta(days=1))
