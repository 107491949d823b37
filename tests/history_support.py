"""Records for the history tests, and a writer on a fresh database."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Optional

from contract import CaseEvent, Incident, Record, Task, new_id, to_iso
from history.queries import CaseStore
from history.writer import HistoryWriter, Positioned

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai
TOPIC_OF = {"Incident": "nonsite.incidents", "Task": "nonsite.tasks", "CaseEvent": "nonsite.case-events",
            "Alert": "nonsite.alerts", "CameraStatus": "nonsite.camera-status", "DeadLetter": "nonsite.dead-letter"}
_offsets = itertools.count()


def make_incident(state: str = "DISPATCHED", updated: datetime = T0, incident_id: str = "i1", first_seen: datetime = T0,
                  **fields) -> Incident:
    return Incident(incident_id=incident_id, camera_id=fields.pop("camera_id", "cam-01"),
                    scenario=fields.pop("scenario", "stray_dog"), zone_id="z", grid_id=fields.pop("grid_id", "G01"),
                    state=state, first_seen=to_iso(first_seen), last_seen=to_iso(first_seen),
                    updated_at=to_iso(updated), **fields)


def case_event(applied: bool = True, source: str = "", reason: str = "", to_state: str = "ACCEPTED",
               incident_id: str = "i1", at: datetime = T0, seq: int = 1, action: str = "accept") -> CaseEvent:
    return CaseEvent(event_id=new_id(), incident_id=incident_id, seq=seq, at=to_iso(at), actor="O101", action=action,
                     from_state="DISPATCHED", to_state=to_state, applied=applied, reason=reason, source=source)


def task(incident_id: str = "i1", officer: str = "O101", assigned: datetime = T0, deadline_min: float = 60,
         task_id: Optional[str] = None, status: str = "assigned") -> Task:
    return Task(task_id=task_id or new_id(), incident_id=incident_id, officer_id=officer, grid_id="G01",
                scenario="stray_dog", assigned_at=to_iso(assigned), accept_by=to_iso(assigned + timedelta(minutes=15)),
                deadline=to_iso(assigned + timedelta(minutes=deadline_min)), status=status)


def put(writer: HistoryWriter, *records: Record) -> list:
    """Write the records as one batch, each at the next offset of partition 0 of its topic."""
    return writer.write([Positioned(r, TOPIC_OF[type(r).__name__], 0, next(_offsets)) for r in records])


def new_store(setting: str = ":memory:") -> tuple[HistoryWriter, CaseStore]:
    from history.database import open_database

    engine = open_database(setting)
    return HistoryWriter(engine, "Asia/Shanghai", "nonsite.feedback"), CaseStore(engine)
