"""What the statistics count about one case, derived from its snapshot, its tasks and its audit log.

The one definition (docs/history.md): a case is counted on the local day it was filed (立案): when first seen,
or for an alarm an operator reviewed, when she confirmed it (an alarm awaiting review or dismissed is no
case: :data:`UNFILED_STATES`, counted apart by :mod:`history.statistics`); it is a false alarm when it ended
``REJECTED``; it is closed when an applied step took it to ``CLOSED``/``VERIFIED``/``SELF_CORRECTED`` (the
time of the last such step); on time when closed by its deadline (the case's, else its first task's, else
filing + the scenario's SLA); reworked when it was reopened at least once; its time to close runs from
filing to closing.

Example::

    >>> from contract import Incident
    >>> case = Incident(incident_id="i1", camera_id="c1", scenario="stray_dog", zone_id="", grid_id="g1",
    ...                 state="CLOSED", first_seen="2026-11-21T01:00:00Z", last_seen="2026-11-21T01:00:00Z",
    ...                 updated_at="2026-11-21T02:00:00Z")
    >>> derive(case, [], [], "Asia/Shanghai", sla_minutes=None)["minutes_to_close"]
    60.0
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Optional
from zoneinfo import ZoneInfo

from contract import Incident, parse_iso
from nonsite.privacy import plate_key

CLOSED_STATES = frozenset({"CLOSED", "VERIFIED", "SELF_CORRECTED"})
TERMINAL_STATES = CLOSED_STATES | {"REJECTED", "DISMISSED"}
# alarms of a scenario under operator review that were never filed: awaiting review (待审核), or dismissed
UNFILED_STATES = frozenset({"AWAITING_REVIEW", "DISMISSED"})
# steps the system of record writes itself (history.custody): they keep the case's state (from = to) and are
# never a closing, a reopening or an escalation, so the counted facts leave them out
RECORD_KEEPING_ACTIONS = frozenset({"legal_hold", "legal_hold_released", "evidence_purged"})


def naive_utc(text: Optional[str]) -> Optional[datetime]:
    """An ISO timestamp as the naive UTC datetime the tables hold (None stays None)."""
    return parse_iso(text).replace(tzinfo=None) if text else None


def as_utc(moment: datetime) -> datetime:
    """A naive UTC datetime from the tables, made aware again."""
    return moment.replace(tzinfo=timezone.utc)


def local_day(moment: datetime, tz: str) -> str:
    """The city's local date of a naive UTC moment, ``YYYY-MM-DD``."""
    return as_utc(moment).astimezone(_zone(tz)).date().isoformat()


@functools.lru_cache(maxsize=8)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


@dataclass(frozen=True)
class Step:
    """What the statistics need of one case event (its columns in ``case_events``)."""

    seq: int
    at: datetime  # naive UTC
    applied: bool
    to_state: Optional[str]


@dataclass(frozen=True)
class Dispatch:
    """What the statistics need of one task (its columns in ``tasks``)."""

    assigned_at: datetime  # naive UTC
    deadline: Optional[datetime]
    officer_id: str


def derive(incident: Incident, dispatches: Iterable[Dispatch], steps: Iterable[Step], tz: str,
           sla_minutes: Optional[float]) -> dict[str, Any]:
    """The counted columns of ``cases`` for one case."""
    dispatches = sorted(dispatches, key=lambda d: d.assigned_at)
    steps = sorted(steps, key=lambda e: (e.seq, e.at))
    filed_at = _filed_at(incident, steps)
    state = incident.state.upper()
    deadline = naive_utc(incident.deadline) or (dispatches[0].deadline if dispatches else None)
    if deadline is None and sla_minutes is not None:
        deadline = filed_at + timedelta(minutes=sla_minutes)
    closed_at = _closed_at(incident, steps) if state != "REJECTED" else None
    return {
        "filed_day": local_day(filed_at, tz),
        "dispatched_at": dispatches[0].assigned_at if dispatches else None,
        "deadline_at": deadline,
        "closed_at": closed_at,
        "minutes_to_close": max(0.0, (closed_at - filed_at).total_seconds() / 60) if closed_at else None,
        "rejected": state == "REJECTED",
        "reworked": incident.reopen_count > 0 or any(e.applied and e.to_state == "REOPENED" for e in steps),
        "escalated": state == "ESCALATED" or any(e.applied and e.to_state == "ESCALATED" for e in steps),
        "officer_id": incident.officer_id or (dispatches[-1].officer_id if dispatches else None),
    }


def _filed_at(incident: Incident, steps: list[Step]) -> datetime:
    """When the case was filed: first seen, or when an operator confirmed the alarm that awaited her review."""
    first_seen = naive_utc(incident.first_seen)
    assert first_seen is not None
    if any(e.applied and e.to_state == "AWAITING_REVIEW" for e in steps):
        confirmed = [e.at for e in steps if e.applied and e.to_state == "DETECTED"]
        if confirmed:
            return max(first_seen, confirmed[0])
    return first_seen


def _closed_at(incident: Incident, steps: list[Step]) -> Optional[datetime]:
    closing = [e for e in steps if e.applied and (e.to_state or "") in CLOSED_STATES]
    if closing:
        return closing[-1].at
    return naive_utc(incident.updated_at) if incident.state.upper() in CLOSED_STATES else None


def snapshot_columns(incident: Incident) -> dict[str, Any]:
    """The searched columns of ``cases`` that come straight from the snapshot."""
    return {"incident_id": incident.incident_id, "scenario": incident.scenario, "camera_id": incident.camera_id,
            "grid_id": incident.grid_id, "zone_id": incident.zone_id, "state": incident.state.upper(),
            "officer_id": incident.officer_id, "plate": incident.plate,
            "plate_key": plate_key(incident.plate) if incident.plate else None,
            "first_seen": naive_utc(incident.first_seen), "updated_at": naive_utc(incident.updated_at)}
