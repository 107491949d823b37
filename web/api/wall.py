"""Operators (and supervisors, read-only): the live alert wall's incidents, cameras, alerts and live events;
an operator can hand a case to another officer, and confirm or dismiss an alarm awaiting review (待审核)."""
from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from history.queries import hours_ago
from web.api.deps import OUTCOME_RESPONSES, city_of, known_incident, new_feedback, send_and_wait, store_of
from web.api.schemas import AlertOut, Camera, ConfirmIn, DismissIn, IncidentDetail, IncidentView, Outcome, ReassignIn
from web.auth import Principal
from web.security import ANY_ROLE, LIVE_ROLES, OPERATOR
from web.views import ALERTS_SHOWN, alert_view, camera_status_view, camera_view, case_event_view, incident_view, \
    recent_alerts

router = APIRouter(prefix="/api", tags=["wall"])
WALL_RECENT_HOURS = 24
WALL_LIMIT = 500


PLATE_ROLES = ("operator", "officer")  # the roles that handle cases; a supervisor sees no plate text


def for_role(who: Principal, view: dict) -> dict:
    """An incident view as ``who`` may see it: the plate (personal data) only for the roles handling cases."""
    return view if who.role in PLATE_ROLES else {**view, "plate": None}


def _wall_incidents(request: Request, who: Principal, scenario: Optional[str] = None, grid: Optional[str] = None,
                    state: Optional[str] = None, limit: int = WALL_LIMIT) -> list[dict]:
    """Open cases first, escalated or overdue first among them, then newest first; a finished case stays a day
    unless asked for by its state."""
    city, store = city_of(request), store_of(request)
    found = store.wall_incidents(hours_ago(WALL_RECENT_HOURS), scenario, grid, state)
    rows = [for_role(who, incident_view(city, store, incident)) for incident in found]
    rows.sort(key=lambda v: v["first_seen"], reverse=True)
    rows.sort(key=lambda v: (not v["open"], not (v["escalated"] or v["overdue"])))
    return rows[:limit]


@router.get("/incidents", response_model=list[IncidentView], response_model_exclude_unset=True,
            summary="open and recent incidents, urgent first")
def incidents(request: Request, scenario: Optional[str] = Query(None, max_length=64),
                    grid: Optional[str] = Query(None, max_length=64), state: Optional[str] = Query(None, max_length=32),
                    limit: int = Query(WALL_LIMIT, ge=1, le=5000), who: Principal = Depends(LIVE_ROLES)) -> list[dict]:
    return _wall_incidents(request, who, scenario, grid, state, limit)


@router.get("/incidents/{incident_id}", response_model=IncidentDetail, response_model_exclude_unset=True,
            summary="one incident with its tasks and audit trail")
def incident(incident_id: str, request: Request, who: Principal = Depends(ANY_ROLE)) -> dict:
    store = store_of(request)
    found = known_incident(request, incident_id)
    if who.role == "officer" and not store.officer_may_see(who.person_id, incident_id):
        raise HTTPException(403, "incident_id: this case is not assigned to you")
    variant = "subject" if who.role in PLATE_ROLES else "public"  # the handlers see the subject, bystanders masked
    return {**for_role(who, incident_view(city_of(request), store, found, variant)),
            "tasks": [t.asdict_deep() for t in store.tasks_of_incident(incident_id)],
            "history": [case_event_view(e) for e in store.history(incident_id)]}


@router.get("/cameras", response_model=list[Camera], response_model_exclude_unset=True,
            summary="every camera with its latest online/offline status")
def cameras(request: Request, who: Principal = Depends(LIVE_ROLES)) -> list[dict]:
    return camera_view(city_of(request), store_of(request))


@router.get("/alerts", response_model=list[AlertOut], response_model_exclude_unset=True,
            summary="latest alerts, newest first")
def alerts(request: Request, limit: int = Query(ALERTS_SHOWN, ge=1, le=2000),
           who: Principal = Depends(LIVE_ROLES)) -> list[dict]:
    return recent_alerts(store_of(request), limit)


# ------------------------------------------------------------------ live events
def _sse(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _snapshot(request: Request, who: Principal) -> str:
    city, store = city_of(request), store_of(request)
    return _sse("snapshot", {"incidents": _wall_incidents(request, who), "cameras": camera_view(city, store),
                             "alerts": recent_alerts(store, ALERTS_SHOWN)})


def _change_events(request: Request, changes: list, who: Principal) -> list[str]:
    city, store = city_of(request), store_of(request)
    out: list[str] = []
    for kind, record in changes:
        if kind == "incident":
            out.append(_sse("incident", for_role(who, incident_view(city, store, record))))
        elif kind in ("task", "case_event") and (case := store.incident(record.incident_id)) is not None:
            out.append(_sse("incident", for_role(who, incident_view(city, store, case))))
        elif kind == "camera":
            out.append(_sse("camera", camera_status_view(city, record)))
        elif kind == "alert":
            out.append(_sse("alert", alert_view(record)))
    return out


async def _events(request: Request, queue: asyncio.Queue, who: Principal) -> AsyncIterator[str]:
    """The snapshot, then each batch of changes; a comment every 10 s keeps the connection (and notices it closed)."""
    bus = request.app.state.bus
    try:
        yield "retry: 1000\n\n"
        yield _snapshot(request, who)
        while queue in bus.listeners:
            try:
                changes = await asyncio.wait_for(queue.get(), 10)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    break
                yield ": keepalive\n\n"
                continue
            for event in _change_events(request, changes, who):
                yield event
    finally:
        bus.listeners.discard(queue)


@router.get("/live", summary="server-sent events: a snapshot, then incident/camera/alert changes")
async def live(request: Request, who: Principal = Depends(LIVE_ROLES)) -> StreamingResponse:
    queue: asyncio.Queue = asyncio.Queue(maxsize=2000)
    request.app.state.bus.listeners.add(queue)
    return StreamingResponse(_events(request, queue, who), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# ------------------------------------------------------------------ operator actions
@router.post("/incidents/{incident_id}/reassign", response_model=Outcome, responses=OUTCOME_RESPONSES,
             summary="operator: hand the case to another officer (Feedback action 'reassign')")
async def reassign(incident_id: str, body: ReassignIn, request: Request,
                   who: Principal = Depends(OPERATOR)) -> JSONResponse:
    if not any(o.id == body.target_officer for o in city_of(request).officers):
        raise HTTPException(422, f"target_officer: unknown officer '{body.target_officer}'")
    found = known_incident(request, incident_id)
    task = store_of(request).current_task(incident_id, found)
    feedback = new_feedback(who, incident_id, "reassign", task_id=task.task_id if task else found.task_id,
                            reason=body.reason, target_officer=body.target_officer)
    return await send_and_wait(request, feedback)


def _awaiting_review(request: Request, incident_id: str) -> None:
    """404 for an unknown case, 409 for one no longer awaiting review (the case processor decides the races)."""
    found = known_incident(request, incident_id)
    if found.state != "AWAITING_REVIEW":
        raise HTTPException(409, f"incident_id: case is {found.state}, not awaiting review")


@router.post("/incidents/{incident_id}/confirm", response_model=Outcome, responses=OUTCOME_RESPONSES,
             summary="operator: confirm an alarm awaiting review: it is filed and dispatched (Feedback 'confirm')")
async def confirm(incident_id: str, body: ConfirmIn, request: Request,
                  who: Principal = Depends(OPERATOR)) -> JSONResponse:
    _awaiting_review(request, incident_id)
    return await send_and_wait(request, new_feedback(who, incident_id, "confirm", reason=body.reason))


@router.post("/incidents/{incident_id}/dismiss", response_model=Outcome, responses=OUTCOME_RESPONSES,
             summary="operator: dismiss an alarm awaiting review, with why: no case, no task (Feedback 'dismiss')")
async def dismiss(incident_id: str, body: DismissIn, request: Request,
                  who: Principal = Depends(OPERATOR)) -> JSONResponse:
    _awaiting_review(request, incident_id)
    return await send_and_wait(request, new_feedback(who, incident_id, "dismiss", reason=body.reason.strip()))
