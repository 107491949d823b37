"""Who gets a case (派遣), pure: on-duty officers of the grid, fewest open tasks, ties round-robin.

Example::

    >>> choose_officer(["O1", "O2", "O3"], {"O1": 2, "O2": 0, "O3": 0}, last_assigned="O2")
    'O3'
    >>> choose_officer(["O1", "O2"], {"O1": 1, "O2": 1}, last_assigned="O2")
    'O1'
"""
from __future__ import annotations

from datetime import datetime
from typing import Mapping, Optional, Sequence
from zoneinfo import ZoneInfo

from nonsite.config import City, Officer, Scenario


def local_moment(epoch: float, timezone: str) -> datetime:
    return datetime.fromtimestamp(epoch, ZoneInfo(timezone))


def on_duty(officer: Officer, epoch: float, timezone: str) -> bool:
    """An officer without shifts is taken to be on duty around the clock."""
    if not officer.shifts:
        return True
    moment = local_moment(epoch, timezone)
    clock = moment.time().replace(tzinfo=None)
    return any(shift.covers(moment.weekday(), clock) for shift in officer.shifts)


def on_duty_officers(city: City, grid_id: str, epoch: float) -> list[str]:
    """Ids of the grid's officers on duty at ``epoch``, in config order."""
    return [o.id for o in city.officers_of(grid_id) if on_duty(o, epoch, city.system.city.timezone)]


def choose_officer(candidates: Sequence[str], open_tasks: Mapping[str, int],
                   last_assigned: Optional[str] = None) -> Optional[str]:
    """Fewest open tasks; among equals the first after ``last_assigned`` in roster order."""
    if not candidates:
        return None
    fewest = min(open_tasks.get(c, 0) for c in candidates)
    tied = [c for c in candidates if open_tasks.get(c, 0) == fewest]
    if last_assigned in candidates:
        start = list(candidates).index(last_assigned)
        rotated = list(candidates[start + 1:]) + list(candidates[:start + 1])
        return next(c for c in rotated if c in tied)
    return tied[0]


def deadline_of(filed_at: float, scenario: Optional[Scenario]) -> float:
    """The time limit (处置时限) runs from filing; an unknown scenario gets an hour."""
    minutes = scenario.sla_minutes if scenario is not None else 60
    return filed_at + minutes * 60.0


def accept_by(assigned_at: float, acceptance_minutes: float) -> float:
    return assigned_at + acceptance_minutes * 60.0


def task_id_for(incident_id: str, attempt: int) -> str:
    """Deterministic, so a reprocessed input re-creates the same task instead of a second one."""
    return f"{incident_id}-t{attempt}"
