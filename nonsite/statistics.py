"""The bureau's figures, defined once: 结案率, 按期结案率, 返工率, false-alarm rate, mean time to close.

Both report paths use these: the worker's counters (``nonsite report``, :mod:`stream.domain.stats`) and
the web reports (:mod:`web.reports`).  From counts of one group of cases:

* due (应结案数) = filed − rejected as false alarms;
* closure rate = closed / due; on-time rate = closed on time / due; rework rate = reworked / due;
* false-alarm rate = false alarms / filed; mean time to close = minutes to close, summed, / closed.

A rate of an empty group is None, never 0: nothing was due.

Example::

    >>> f = figures(filed=10, false_alarms=2, closed=6, on_time=5, reworked=1, minutes_total=120.0)
    >>> f["due"], f["closure_rate"], f["on_time_rate"], f["false_alarm_rate"], f["mean_minutes_to_close"]
    (8, 0.75, 0.625, 0.2, 20.0)
"""
from __future__ import annotations

from typing import Optional

GROUPS: tuple[str, ...] = ("scenario", "grid", "officer", "camera")  # what figures are grouped by


def ratio(part: float, whole: float) -> Optional[float]:
    return round(part / whole, 4) if whole > 0 else None


def mean_minutes(minutes_total: float, closed: float) -> Optional[float]:
    return round(minutes_total / closed, 1) if closed > 0 else None


def figures(filed: float, false_alarms: float, closed: float, on_time: float, reworked: float,
            minutes_total: float) -> dict:
    """The derived figures of one group (see the module's definitions)."""
    due = int(filed - false_alarms)
    return {"due": due, "closure_rate": ratio(closed, due), "on_time_rate": ratio(on_time, due),
            "rework_rate": ratio(reworked, due), "false_alarm_rate": ratio(false_alarms, filed),
            "mean_minutes_to_close": mean_minutes(minutes_total, closed)}
