"""Records from the system of record as the JSON the pages show: names, labels, flags and time left.

Example::

    >>> overdue_at("2026-11-21T01:00:00.000Z", "OPEN", now=parse_iso("2026-11-21T02:00:00.000Z"))
    True
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal, Optional

from nonsite.config import Camera, City
from contract import Alert, CameraStatus, CaseEvent, Evidence, Incident, Task, parse_iso
from history.facts import TERMINAL_STATES
from history.queries import OPEN_TASK_STATUSES, CaseStore

# Reasons an officer may give for rejecting a task as a false alarm (误报); the API accepts only these codes.
REJECT_REASONS: dict[str, str] = {
    "not_a_violation": "不构成违规 Not a violation",
    "already_gone": "现场已无 Already gone on arrival",
    "duplicate": "重复案件 Duplicate of another case",
    "wrong_location": "位置不符 Wrong location",
    "camera_fault": "摄像头误检 Camera / detection fault",
}


ALERTS_SHOWN = 50  # alerts on the wall (and the default of GET /api/alerts)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def norm_state(state: Optional[str]) -> str:
    return (state or "").upper()


def overdue_at(deadline: Optional[str], state: str, now: Optional[datetime] = None) -> bool:
    if not deadline or norm_state(state) in TERMINAL_STATES:
        return False
    return (now or now_utc()) > parse_iso(deadline)


def evidence_url(sha256: str) -> str:
    return f"/api/evidence/{sha256}"


Variant = Literal["subject", "public"]  # docs/privacy.md: who sees which masked copy


def shown_copy(evidence: Evidence, variant: Variant) -> Optional[str]:
    """The sha256 of the copy of a picture a viewer is shown: its masked ``variant`` when the picture has masked
    copies; the picture itself when it has none (masking off, an officer's photo); None when the variant could
    not be made (then nothing may be shown)."""
    if not evidence.masked:
        return evidence.sha256
    return evidence.masked.get(variant)


def shown_evidence(incident: Incident, variant: Variant) -> list[dict[str, Any]]:
    shown = [(e.kind, shown_copy(e, variant)) for e in incident.evidence]
    return [{"kind": kind, "sha256": sha, "url": evidence_url(sha)} for kind, sha in shown if sha]


def incident_view(city: City, store: CaseStore, incident: Incident, variant: Variant = "public") -> dict[str, Any]:
    """A case as the pages show it; its pictures are the ``variant`` masked copies (the public ones unless the
    viewer handles the case)."""
    camera = city.camera(incident.camera_id)
    scenario = city.scenario(incident.scenario)
    officer = next((o for o in city.officers if o.id == incident.officer_id), None)
    grid = next((g for g in city.grids if g.id == incident.grid_id), None)
    state = norm_state(incident.state)
    task = store.current_task(incident.incident_id, incident)
    deadline = incident.deadline or (task.deadline if task else None)
    evidence = shown_evidence(incident, variant)
    snapshot = next((e for e in evidence if e["kind"] == "annotated"), None) or (evidence[0] if evidence else None)
    return {
        "incident_id": incident.incident_id,
        "scenario": incident.scenario,
        "scenario_zh": scenario.label_zh if scenario else incident.scenario,
        "scenario_en": scenario.label_en if scenario else incident.scenario,
        "plate": incident.plate,  # personal data: the wall and the officer's tasks only, never a report
        "camera_id": incident.camera_id,
        "camera_name": camera.name if camera else incident.camera_id,
        "address": incident.address or (camera.location.address if camera else ""),
        "lat": incident.lat if incident.lat is not None else (camera.location.lat if camera else None),
        "lon": incident.lon if incident.lon is not None else (camera.location.lon if camera else None),
        "zone_id": incident.zone_id,
        "grid_id": incident.grid_id,
        "grid_name": grid.name if grid else incident.grid_id,
        "state": state,
        "first_seen": incident.first_seen,
        "last_seen": incident.last_seen,
        "updated_at": incident.updated_at,
        "detections": incident.detections,
        "priority": incident.priority,
        "officer_id": incident.officer_id,
        "officer_name": officer.name if officer else (incident.officer_id or ""),
        "task_id": incident.task_id or (task.task_id if task else None),
        "task_status": task.status if task else None,
        "deadline": deadline,
        "escalated": store.is_escalated(incident.incident_id),
        "overdue": overdue_at(deadline, state),
        "open": state not in TERMINAL_STATES,
        "first_offence": incident.first_offence,
        "recurrence_of": incident.recurrence_of,
        "reopen_count": incident.reopen_count,
        "snapshot": snapshot["url"] if snapshot else None,
        "evidence": evidence,
    }


def task_view(city: City, store: CaseStore, task: Task) -> dict[str, Any]:
    incident = store.incident(task.incident_id)
    view = incident_view(city, store, incident, "subject") if incident else {"incident_id": task.incident_id,
                                                                             "state": ""}
    state = view.get("state", "")
    return {
        **view,
        "task_id": task.task_id,
        "task_status": task.status,
        "officer_id": task.officer_id,
        "assigned_at": task.assigned_at,
        "accept_by": task.accept_by,
        "deadline": task.deadline,
        "attempt": task.attempt,
        "first_offence": task.first_offence or view.get("first_offence", False),
        "note": task.note,
        "active": task.status in OPEN_TASK_STATUSES and state not in TERMINAL_STATES,
        "overdue": task.status in OPEN_TASK_STATUSES and overdue_at(task.deadline, state),
    }


def task_order(view: dict[str, Any]) -> tuple:
    """Active first; among them overdue/escalated, then most urgent priority (1 = highest), then newest."""
    assigned = parse_iso(view["assigned_at"]).timestamp()
    return (not view["active"], not (view["overdue"] or view.get("escalated")), view.get("priority", 3), -assigned)


def camera_view(city: City, store: CaseStore) -> list[dict[str, Any]]:
    """Every configured camera with its latest status, then cameras that report but are not configured."""
    statuses = store.cameras()
    rows = [_camera_row(camera.id, camera, statuses.get(camera.id)) for camera in city.cameras]
    known = {c.id for c in city.cameras}
    rows += [_camera_row(camera_id, None, status) for camera_id, status in statuses.items()
             if camera_id not in known]
    return rows


def camera_status_view(city: City, status: CameraStatus) -> dict[str, Any]:
    return _camera_row(status.camera_id, city.camera(status.camera_id), status)


def _camera_row(camera_id: str, camera: Optional[Camera], status: Optional[CameraStatus]) -> dict[str, Any]:
    return {"camera_id": camera_id, "name": camera.name if camera else camera_id,
            "address": camera.location.address if camera else "", "grid_id": camera.grid if camera else "",
            "enabled": camera.enabled if camera else True, "state": status.state if status else "unknown",
            "observed_at": status.observed_at if status else None, "reason": status.reason if status else ""}


def alert_view(alert: Alert) -> dict[str, Any]:
    return alert.asdict_deep()


def recent_alerts(store: CaseStore, limit: int = ALERTS_SHOWN) -> list[dict[str, Any]]:
    """The latest ``limit`` alerts, newest first."""
    return [alert_view(a) for a in store.recent_alerts(limit)]


def case_event_view(event: CaseEvent) -> dict[str, Any]:
    return event.asdict_deep()
