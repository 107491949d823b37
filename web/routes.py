"""The JSON API: login, the live wall, officer tasks and actions, uploads, evidence, reports."""
from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, AsyncIterator, Literal, Optional
from zoneinfo import ZoneInfo

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from nonsite.passwords import verify_password
from contract import Evidence, Feedback, new_id, parse_iso, utc_now
from web import evidence as store
from web import reports
from web.auth import Principal, find_login
from web.readmodel import TERMINAL_STATES, ReadModel, Verdict, norm_state
from web.security import ANY_ROLE, COOKIE, LIVE_ROLES, OFFICER, OPERATOR, REPORT_ROLES
from web.throttle import LoginThrottle
from web.views import (REJECT_REASONS, alert_view, camera_status_view, camera_view, case_event_view, incident_view,
                       task_order, task_view)

router = APIRouter(prefix="/api")
log = structlog.get_logger("web.routes")
LOGINS = Counter("nonsite_web_logins_total", "login attempts by outcome (ok, failed, throttled)", ["outcome"])
MAX_RANGE_DAYS = 366
WALL_RECENT_HOURS = 24
WALL_LIMIT = 500
RECENT_DONE_TASKS = 30  # finished tasks still listed under an officer's active ones


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class ActionIn(Strict):
    action: Literal["accept", "arrive", "resolve", "reject"]
    note: str = Field(default="", max_length=2000)
    reason: str = Field(default="", max_length=64, description="for reject: one code of GET /api/meta reject_reasons")
    evidence: list[str] = Field(default=[], max_length=10, description="sha256 of photos sent to POST /api/uploads")


class ReassignIn(Strict):
    target_officer: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=500)


class Outcome(BaseModel):
    feedback_id: str
    action: str
    status: Literal["applied", "refused", "pending"]
    reason: str = ""
    to_state: Optional[str] = None


def _city(request: Request):
    return request.app.state.city


def _model(request: Request) -> ReadModel:
    return request.app.state.model


# ------------------------------------------------------------------ auth
@router.post("/login", tags=["auth"], summary="log in; returns a bearer token and sets the session cookie")
async def login(body: LoginIn, request: Request) -> JSONResponse:
    throttle: LoginThrottle = request.app.state.login_throttle
    address = request.client.host if request.client else "unknown"
    wait_s = throttle.begin(body.username, address)
    if wait_s > 0:
        retry_after = math.ceil(wait_s)
        LOGINS.labels("throttled").inc()
        log.warning("web.login.throttled", username=body.username[:64], address=address, retry_after_s=retry_after)
        raise HTTPException(429, f"too many failed logins for this user or address: try again in {retry_after} s",
                            headers={"Retry-After": str(retry_after)})
    who = await asyncio.to_thread(find_login, _city(request), body.username, body.password)
    if who is None:
        LOGINS.labels("failed").inc()
        log.info("web.login.failed", username=body.username[:64], address=address)
        raise HTTPException(401, "username or password is wrong")
    throttle.succeeded(body.username, address)
    LOGINS.labels("ok").inc()
    tokens = request.app.state.tokens
    token = tokens.issue(who)
    expires = tokens.expires_at(token)
    response = JSONResponse({"token": token, "expires_at": datetime.fromtimestamp(expires).astimezone().isoformat(),
                             "role": who.role, "person_id": who.person_id, "name": who.name})
    response.set_cookie(COOKIE, token, max_age=int(tokens.ttl_s), httponly=True, samesite="strict", path="/")
    return response


@router.post("/logout", tags=["auth"], summary="end the session (the token stops working)")
async def logout(request: Request, who: Principal = Depends(ANY_ROLE)) -> JSONResponse:
    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE)
    if token:
        request.app.state.tokens.revoke(token)
    response = JSONResponse({"ok": True})
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/me", tags=["auth"])
async def me(who: Principal = Depends(ANY_ROLE)) -> dict:
    return {"person_id": who.person_id, "username": who.username, "name": who.name, "role": who.role,
            "grid": who.grid}


DEMO_PASSWORDS = {"operator": "ops-demo", "supervisor": "sup-demo", "officer": "off-demo"}


def _demo_logins(city) -> list[dict]:
    """Accounts that still have the published demo password (so a real deployment shows none)."""
    people = [(o.credentials.username, "officer", o.credentials.password_hash) for o in city.officers if o.credentials]
    people += [(u.credentials.username, u.role, u.credentials.password_hash) for u in city.users]
    return [{"username": name, "password": DEMO_PASSWORDS[role], "role": role} for name, role, stored in people
            if verify_password(DEMO_PASSWORDS[role], stored)]


@router.get("/demo-logins", tags=["auth"], summary="demo accounts whose published demo password still works")
async def demo_logins(request: Request) -> list[dict]:
    if request.app.state.demo_logins is None:
        request.app.state.demo_logins = await asyncio.to_thread(_demo_logins, _city(request))
    return request.app.state.demo_logins


@router.get("/health", tags=["auth"], summary="liveness: is the read model consuming (no login needed)")
async def health(request: Request) -> JSONResponse:
    bus = request.app.state.bus
    body = {"ok": bus.healthy, "reason": bus.health_reason, "records": _model(request).messages,
            "incidents": len(_model(request).incidents), "last_record_at": bus.last_message_at}
    return JSONResponse(body, status_code=200 if bus.healthy else 503)


@router.get("/meta", tags=["auth"], summary="scenarios, grids, officers, states and reject reasons for the pages")
async def meta(request: Request, who: Principal = Depends(ANY_ROLE)) -> dict:
    city = _city(request)
    return {"city": city.system.city.name, "city_zh": city.system.city.name_zh,
            "timezone": city.system.city.timezone,
            "scenarios": [{"id": s.id, "label_zh": s.label_zh, "label_en": s.label_en, "sla_minutes": s.sla_minutes}
                          for s in city.scenarios],
            "grids": [{"id": g.id, "name": g.name} for g in city.grids],
            "officers": [{"id": o.id, "name": o.name, "grid": o.grid} for o in city.officers],
            "reject_reasons": [{"code": k, "label": v} for k, v in REJECT_REASONS.items()],
            "min_sample_for_ranking": city.web.min_sample_for_ranking,
            "upload_max_mb": city.web.upload_max_mb, "upload_types": city.web.upload_types}


# ------------------------------------------------------------------ live wall
def _wall_incidents(request: Request, scenario: Optional[str] = None, grid: Optional[str] = None,
                    state: Optional[str] = None, limit: int = WALL_LIMIT) -> list[dict]:
    city, model = _city(request), _model(request)
    since = datetime.now().astimezone() - timedelta(hours=WALL_RECENT_HOURS)
    rows = []
    for incident in model.all_incidents():
        if scenario and incident.scenario != scenario or grid and incident.grid_id != grid:
            continue
        if state and norm_state(incident.state) != state.upper():
            continue
        if norm_state(incident.state) in TERMINAL_STATES and parse_iso(incident.updated_at) < since and not state:
            continue
        rows.append(incident_view(city, model, incident))
    rows.sort(key=lambda v: v["first_seen"], reverse=True)
    rows.sort(key=lambda v: (not v["open"], not (v["escalated"] or v["overdue"])))
    return rows[:limit]


@router.get("/incidents", tags=["wall"], summary="open and recent incidents, urgent first")
async def incidents(request: Request, scenario: Optional[str] = Query(None, max_length=64),
                    grid: Optional[str] = Query(None, max_length=64), state: Optional[str] = Query(None, max_length=32),
                    limit: int = Query(WALL_LIMIT, ge=1, le=5000), who: Principal = Depends(LIVE_ROLES)) -> list[dict]:
    return _wall_incidents(request, scenario, grid, state, limit)


@router.get("/incidents/{incident_id}", tags=["wall"], summary="one incident with its tasks and audit trail")
async def incident(incident_id: str, request: Request, who: Principal = Depends(ANY_ROLE)) -> dict:
    model = _model(request)
    found = model.incidents.get(incident_id)
    if found is None:
        raise HTTPException(404, f"incident_id: unknown incident '{incident_id}'")
    if who.role == "officer" and not model.officer_may_see(who.person_id, incident_id):
        raise HTTPException(403, "incident_id: this case is not assigned to you")
    return {**incident_view(_city(request), model, found),
            "tasks": [t.asdict_deep() for t in model.tasks_of_incident(incident_id)],
            "history": [case_event_view(e) for e in model.history(incident_id)]}


@router.get("/cameras", tags=["wall"], summary="every camera with its latest online/offline status")
async def cameras(request: Request, who: Principal = Depends(LIVE_ROLES)) -> list[dict]:
    return camera_view(_city(request), _model(request))


@router.get("/alerts", tags=["wall"], summary="latest alerts, newest first")
async def alerts(request: Request, limit: int = Query(50, ge=1, le=2000),
                 who: Principal = Depends(LIVE_ROLES)) -> list[dict]:
    return [alert_view(a) for a in reversed(list(_model(request).alerts)[-limit:])]


def _sse(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _change_events(request: Request, changes: list) -> list[str]:
    city, model = _city(request), _model(request)
    out: list[str] = []
    for kind, record in changes:
        if kind == "incident":
            out.append(_sse("incident", incident_view(city, model, record)))
        elif kind in ("task", "case_event") and record.incident_id in model.incidents:
            out.append(_sse("incident", incident_view(city, model, model.incidents[record.incident_id])))
        elif kind == "camera":
            out.append(_sse("camera", camera_status_view(city, record)))
        elif kind == "alert":
            out.append(_sse("alert", alert_view(record)))
    return out


@router.get("/live", tags=["wall"], summary="server-sent events: a snapshot, then incident/camera/alert changes")
async def live(request: Request, who: Principal = Depends(LIVE_ROLES)) -> StreamingResponse:
    bus = request.app.state.bus
    queue: asyncio.Queue = asyncio.Queue(maxsize=2000)
    bus.listeners.add(queue)

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 1000\n\n"
            yield _sse("snapshot", {"incidents": _wall_incidents(request),
                                    "cameras": camera_view(_city(request), _model(request)),
                                    "alerts": [alert_view(a) for a in reversed(list(_model(request).alerts)[-50:])]})
            while queue in bus.listeners:
                try:
                    changes = await asyncio.wait_for(queue.get(), 10)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        break
                    yield ": keepalive\n\n"
                    continue
                for event in _change_events(request, changes):
                    yield event
        finally:
            bus.listeners.discard(queue)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@dataclass(frozen=True)
class SentFeedback:
    actor: str
    incident_id: str
    action: str
    position: str


def _outcome(feedback_id: str, action: str, verdict: Optional[Verdict]) -> Outcome:
    if verdict is None:
        return Outcome(feedback_id=feedback_id, action=action, status="pending",
                       reason="sent; the case processor has not answered yet")
    return Outcome(feedback_id=feedback_id, action=action, status="applied" if verdict.applied else "refused",
                   reason=verdict.reason, to_state=norm_state(verdict.to_state) or None)


async def _send_and_wait(request: Request, feedback: Feedback) -> JSONResponse:
    bus = request.app.state.bus
    try:
        where = await bus.send_feedback(feedback)
    except Exception as exc:  # Kafka down: say so, never pretend it was sent
        raise HTTPException(503, f"feedback could not be written to Kafka: {type(exc).__name__}: {exc}") from None
    request.app.state.sent[feedback.feedback_id] = SentFeedback(feedback.actor, feedback.incident_id,
                                                                 feedback.action, where)
    verdict = await bus.wait_for_outcome((feedback.feedback_id, where), request.app.state.outcome_wait_s)
    outcome = _outcome(feedback.feedback_id, feedback.action, verdict)
    status = {"applied": 200, "refused": 409, "pending": 202}[outcome.status]
    return JSONResponse(outcome.model_dump(), status_code=status)


@router.post("/incidents/{incident_id}/reassign", tags=["wall"], response_model=Outcome,
             responses={202: {"model": Outcome}, 409: {"model": Outcome}},
             summary="operator: hand the case to another officer (Feedback action 'reassign')")
async def reassign(incident_id: str, body: ReassignIn, request: Request,
                   who: Principal = Depends(OPERATOR)) -> JSONResponse:
    city, model = _city(request), _model(request)
    if not any(o.id == body.target_officer for o in city.officers):
        raise HTTPException(422, f"target_officer: unknown officer '{body.target_officer}'")
    found = model.incidents.get(incident_id)
    if found is None:
        raise HTTPException(404, f"incident_id: unknown incident '{incident_id}'")
    task = model.current_task(incident_id)
    feedback = Feedback(feedback_id=new_id(), incident_id=incident_id, action="reassign", actor=who.person_id,
                        at=utc_now(), task_id=task.task_id if task else found.task_id, reason=body.reason,
                        target_officer=body.target_officer)
    return await _send_and_wait(request, feedback)


# ------------------------------------------------------------------ officer
@router.get("/my/tasks", tags=["officer"], summary="the caller's tasks: active first, urgent and newest first")
async def my_tasks(request: Request, who: Principal = Depends(OFFICER)) -> list[dict]:
    city, model = _city(request), _model(request)
    views = sorted((task_view(city, model, t) for t in model.tasks_of_officer(who.person_id)), key=task_order)
    active = [v for v in views if v["active"]]
    return active + [v for v in views if not v["active"]][:RECENT_DONE_TASKS]


def _own_task(request: Request, who: Principal, task_id: str):
    task = _model(request).tasks.get(task_id)
    if task is None:
        raise HTTPException(404, f"task_id: unknown task '{task_id}'")
    if who.role == "officer" and task.officer_id != who.person_id:
        raise HTTPException(403, "task_id: this task is assigned to another officer")
    return task


@router.get("/tasks/{task_id}", tags=["officer"], summary="one task with the evidence, location and history")
async def task_detail(task_id: str, request: Request, who: Principal = Depends(ANY_ROLE)) -> dict:
    task = _own_task(request, who, task_id)
    model = _model(request)
    history = model.history(task.incident_id)
    photos = list(dict.fromkeys(sha for event in history for sha in event.evidence))
    return {**task_view(_city(request), model, task), "history": [case_event_view(e) for e in history],
            "photos": [{"sha256": sha, "url": f"/api/evidence/{sha}"} for sha in photos
                       if store.locate(request.app.state.evidence_root, sha)]}


def may_attach(request: Request, who: Principal, incident_id: str, sha256: str) -> bool:
    """Whether ``who`` may name this file in an action on the case: their own upload, or the case's evidence.

    Attaching a file links it to the case, and whoever may see the case may then read it; so a file
    someone else uploaded, or evidence of another case, must not be attachable.
    """
    own_upload = who.person_id in request.app.state.uploaded_by.get(sha256, set())
    return own_upload or incident_id in _model(request).incidents_with_evidence(sha256)


def _attachable_photo(request: Request, who: Principal, incident_id: str, index: int, sha256: str) -> Evidence:
    """The Evidence for one ``evidence[index]`` of an action, or 422 (one answer for missing and not allowed,
    so the answer does not tell whether someone else's file exists)."""
    root = request.app.state.evidence_root
    path = store.locate(root, sha256) if may_attach(request, who, incident_id, sha256) else None
    if path is None:
        raise HTTPException(422, f"evidence[{index}]: no photo you uploaded or of this case with sha256 "
                                 f"'{sha256[:70]}'")
    return Evidence(kind="officer_photo", sha256=sha256, uri=str(path.relative_to(root)),
                    content_type=store.media_type(path))


@router.post("/tasks/{task_id}/actions", tags=["officer"], response_model=Outcome,
             responses={202: {"model": Outcome}, 409: {"model": Outcome}},
             summary="officer: accept, arrive, resolve (note, photos) or reject as a false alarm (reason code)")
async def task_action(task_id: str, body: ActionIn, request: Request,
                      who: Principal = Depends(OFFICER)) -> JSONResponse:
    task = _own_task(request, who, task_id)
    if body.action == "reject" and body.reason not in REJECT_REASONS:
        raise HTTPException(422, f"reason: a false-alarm rejection needs one of {', '.join(REJECT_REASONS)}")
    photos = [_attachable_photo(request, who, task.incident_id, index, sha) for index, sha in enumerate(body.evidence)]
    reason = REJECT_REASONS.get(body.reason, body.reason) if body.action == "reject" else body.reason
    feedback = Feedback(feedback_id=new_id(), incident_id=task.incident_id, action=body.action, actor=who.person_id,
                        at=utc_now(), task_id=task.task_id, reason=f"{body.reason}: {reason}" if body.reason else "",
                        note=body.note, evidence=photos)
    return await _send_and_wait(request, feedback)


@router.get("/feedback/{feedback_id}", tags=["officer"], response_model=Outcome,
            summary="the processor's answer to an earlier action (when POST returned 202 pending)")
async def feedback_outcome(feedback_id: str, request: Request, who: Principal = Depends(ANY_ROLE)) -> Outcome:
    sent = request.app.state.sent.get(feedback_id)
    model = _model(request)
    if sent is None:  # sent before this server started: only the id can find the answer
        verdict = model.outcome(feedback_id)
        if verdict is None:
            raise HTTPException(404, f"feedback_id: no feedback '{feedback_id[:40]}' known to this server")
        if who.role == "officer" and not model.officer_may_see(who.person_id, verdict.incident_id):
            raise HTTPException(403, "feedback_id: not your case")
        return _outcome(feedback_id, verdict.action, verdict)
    if who.role == "officer" and sent.actor != who.person_id:
        raise HTTPException(403, "feedback_id: not your action")
    return _outcome(feedback_id, sent.action, model.outcome(feedback_id, sent.position))


@router.post("/uploads", tags=["officer"], status_code=201,
             summary="officer: upload one photo as the raw request body (Content-Type image/jpeg, png or webp)",
             openapi_extra={"requestBody": {"required": True, "content": {
                 t: {"schema": {"type": "string", "format": "binary"}} for t in ("image/jpeg", "image/png",
                                                                               "image/webp")}}})
async def upload(request: Request, who: Principal = Depends(OFFICER)) -> dict:
    web = _city(request).web
    declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if declared not in web.upload_types:
        raise HTTPException(415, f"content-type: '{declared or 'missing'}' is not allowed "
                                 f"(allowed: {', '.join(web.upload_types)})")
    limit = int(web.upload_max_mb * 1024 * 1024)
    if int(request.headers.get("content-length") or 0) > limit:
        raise HTTPException(413, f"body: larger than the {web.upload_max_mb:g} MB upload limit")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise HTTPException(413, f"body: larger than the {web.upload_max_mb:g} MB upload limit")
    if not data:
        raise HTTPException(422, "body: empty upload")
    problem = await asyncio.to_thread(store.image_problem, bytes(data), declared)
    if problem is not None:
        raise HTTPException(415, f"body: {problem}")
    saved = await asyncio.to_thread(store.store, request.app.state.evidence_root, bytes(data), declared)
    request.app.state.uploaded_by.setdefault(saved.sha256, set()).add(who.person_id)
    return {**saved.asdict_deep(), "url": f"/api/evidence/{saved.sha256}", "size": len(data)}


@router.get("/evidence/{sha256}", tags=["evidence"], summary="an evidence file, to users allowed to see its case")
async def evidence_file(sha256: str, request: Request, who: Principal = Depends(ANY_ROLE)) -> FileResponse:
    if not store.SHA256.match(sha256):
        raise HTTPException(422, "sha256: expected 64 lowercase hex characters")
    model = _model(request)
    if who.role == "officer":
        mine = who.person_id in request.app.state.uploaded_by.get(sha256, set()) or any(
            model.officer_may_see(who.person_id, incident_id) for incident_id in model.incidents_with_evidence(sha256))
        if not mine:
            raise HTTPException(403, "sha256: this evidence belongs to a case not assigned to you")
    path = store.locate(request.app.state.evidence_root, sha256)
    if path is None:
        raise HTTPException(404, f"sha256: no evidence file '{sha256}' in the store")
    return FileResponse(path, media_type=store.media_type(path), headers={"Cache-Control": "private, max-age=3600"})


# ------------------------------------------------------------------ reports
def _period(request: Request, first: Optional[date], last: Optional[date]) -> reports.Period:
    tz = ZoneInfo(_city(request).system.city.timezone)
    today = datetime.now(tz).date()
    last = last or today
    try:
        first = first or last - timedelta(days=29)
    except OverflowError:
        raise HTTPException(422, f"to: {last} leaves no room for a 30-day range before it") from None
    if last < first:
        raise HTTPException(422, f"to: {last} is before from: {first}")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise HTTPException(422, f"to: the range may cover at most {MAX_RANGE_DAYS} days")
    return reports.Period(first, last, tz)


def _facts(request: Request, period: reports.Period) -> list[reports.CaseFacts]:
    return reports.in_period(reports.case_facts(_city(request), _model(request)), period)


FROM = Query(None, alias="from", description="first day YYYY-MM-DD, local time (default: 29 days before to)")
TO = Query(None, alias="to", description="last day YYYY-MM-DD (default: today)")
BY = Query("scenario", description="scenario, grid, officer or camera")


def _summary(request: Request, first: Optional[date], last: Optional[date], by: str) -> tuple:
    """(period, rows, total) of the closure summary: what the JSON and the CSV report both show."""
    period = _period(request, first, last)
    rows, total = reports.summarise(_facts(request, period), by, reports.labels(_city(request), by))
    return period, rows, total


@router.get("/reports/summary", tags=["reports"], summary="closure, on-time, rework, false-alarm rates by group")
async def summary(request: Request, first: Optional[date] = FROM, last: Optional[date] = TO,
                  by: Literal["scenario", "grid", "officer", "camera"] = BY,
                  who: Principal = Depends(REPORT_ROLES)) -> dict:
    period, rows, total = _summary(request, first, last, by)
    return {"from": period.first.isoformat(), "to": period.last.isoformat(), "by": by,
            "rows": [r.as_dict() for r in rows], "total": total.as_dict()}


@router.get("/reports/summary.csv", tags=["reports"], summary="the same summary as CSV")
async def summary_csv(request: Request, first: Optional[date] = FROM, last: Optional[date] = TO,
                      by: Literal["scenario", "grid", "officer", "camera"] = BY,
                      who: Principal = Depends(REPORT_ROLES)) -> PlainTextResponse:
    period, rows, total = _summary(request, first, last, by)
    name = f"nonsite-{by}-{period.first}-{period.last}.csv"
    return PlainTextResponse("\ufeff" + reports.to_csv(rows, total), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/reports/daily", tags=["reports"], summary="per day: filed, closed, closure rate")
async def daily(request: Request, first: Optional[date] = FROM, last: Optional[date] = TO,
                who: Principal = Depends(REPORT_ROLES)) -> list[dict]:
    period = _period(request, first, last)
    return reports.daily(_facts(request, period), period)


@router.get("/reports/trend.svg", tags=["reports"], summary="the daily trend as an SVG chart")
async def trend(request: Request, first: Optional[date] = FROM, last: Optional[date] = TO,
                who: Principal = Depends(REPORT_ROLES)) -> Response:
    period = _period(request, first, last)
    return Response(reports.trend_svg(reports.daily(_facts(request, period), period)), media_type="image/svg+xml")


@router.get("/reports/ranking", tags=["reports"], summary="ranking; groups under the minimum sample are not ranked")
async def ranking(request: Request, first: Optional[date] = FROM, last: Optional[date] = TO,
                  by: Literal["officer", "grid", "scenario", "camera"] = Query("officer"),
                  min_sample: Optional[int] = Query(None, ge=1, le=100000),
                  who: Principal = Depends(REPORT_ROLES)) -> dict:
    period = _period(request, first, last)
    rows, _ = reports.summarise(_facts(request, period), by, reports.labels(_city(request), by))
    needed = min_sample or _city(request).web.min_sample_for_ranking
    return {"from": period.first.isoformat(), "to": period.last.isoformat(), "by": by,
            **reports.ranking(rows, needed).as_dict()}


@router.get("/reports/monthly", tags=["reports"], summary="the monthly report: counts by scenario, rates")
async def monthly(request: Request, month: str = Query(..., pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                                                       description="YYYY-MM"),
                  who: Principal = Depends(REPORT_ROLES)) -> dict:
    city = _city(request)
    try:
        period = reports.month_period(month, ZoneInfo(city.system.city.timezone))
    except (ValueError, OverflowError) as exc:
        raise HTTPException(422, f"month: {exc}") from None
    facts = _facts(request, period)
    rows, total = reports.summarise(facts, "scenario", reports.labels(city, "scenario"))
    grids, _ = reports.summarise(facts, "grid", reports.labels(city, "grid"))
    return {"month": month, "from": period.first.isoformat(), "to": period.last.isoformat(),
            "city": city.system.city.name, "city_zh": city.system.city.name_zh,
            "by_scenario": [r.as_dict() for r in rows], "by_grid": [g.as_dict() for g in grids],
            "total": total.as_dict()}
