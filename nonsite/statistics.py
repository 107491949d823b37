"""The bureau's figures, defined once: 结案率, 按期结案率, 返工率, false-alarm rate, mean time to close.

The system of record counts with them (:mod:`history.statistics`), for the web reports and ``nonsite report``
alike.  From counts of one group of cases:

* due (应结案数) = filed − rejected as false alarms;
* closure rate = closed / due; on-time rate = closed on time / due; rework rate = reworked / due;
* false-alarm rate = false alarms / filed; mean time to close = minutes to close, summed, / closed.

A rate of an empty group is None, never 0: nothing was due.

The rates are properties of :class:`history.statistics.Figures`; these two are the arithmetic.

Example::

    >>> ratio(6, 8), ratio(1, 0), mean_minutes(120.0, 6)
    (0.75, None, 20.0)
"""
from __future__ import annotations

from typing import Optional


def ratio(part: float, whole: float) -> Optional[float]:
    return round(part / whole, 4) if whole > 0 else None


def mean_minutes(minutes_total: float, closed: float) -> Optional[float]:
    return round(minutes_total / closed, 1) if closed > 0 else None
