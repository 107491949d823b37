"""Officers: their tasks, one task in full, the actions on it (accept, arrive, resolve, reject), the answer to
an earlier action, and photo uploads."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from contract import Evidence, Task
from web.uploads import image_problem, media_type
from web.api.deps import OUTCOME_RESPONSES, city_of, new_feedback, outcome, send_and_wait, store_of, uploaded_by
from web.api.schemas import ActionIn, Outcome, StoredEvidence, TaskDetail, TaskView
from web.auth import Principal
from web.security import ANY_ROLE, OFFICER
from web.views import REJECT_REASONS, case_event_view, evidence_url, now_utc, task_order, task_view

router = APIRouter(prefix="/api", tags=["officer"])
RECENT_DONE_TASKS = 30  # finished tasks still listed under an officer's active ones
UPLOAD_TYPES = ("image/jpeg", "image/png", "image/webp")
UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    t: {"schema": {"type": "string", "format": "binary"}} for t in UPLOAD_TYPES}}}


@router.get("/my/tasks", response_model=list[TaskView], response_model_exclude_unset=True,
            summary="the caller's tasks: active first, urgent and newest first")
def my_tasks(request: Request, who: Principal = Depends(OFFICER)) -> list[dict]:
    city, store = city_of(request), store_of(request)
    views = sorted((task_view(city, store, t) for t in store.tasks_of_officer(who.person_id)), key=task_order)
    active = [v for v in views if v["active"]]
    return active + [v for v in views if not v["active"]][:RECENT_DONE_TASKS]


def _own_task(request: Request, who: Principal, task_id: str) -> Task:
    task = store_of(request).task(task_id)
    if task is None:
        raise HTTPException(404, f"task_id: unknown task '{task_id}'")
    if who.role == "officer" and task.officer_id != who.person_id:
        raise HTTPException(403, "task_id: this task is assigned to another officer")
    return task


@router.get("/tasks/{task_id}", response_model=TaskDetail, response_model_exclude_unset=True,
            summary="one task with the evidence, location and history")
def task_detail(task_id: str, request: Request, who: Principal = Depends(ANY_ROLE)) -> dict:
    task = _own_task(request, who, task_id)
    store = store_of(request)
    history = store.history(task.incident_id)
    photos = list(dict.fromkeys(sha for event in history for sha in event.evidence))
    return {**task_view(city_of(request), store, task), "history": [case_event_view(e) for e in history],
            "photos": [{"sha256": sha, "url": evidence_url(sha)} for sha in photos
                       if request.app.state.evidence.locate(sha)]}


def may_attach(request: Request, who: Principal, incident_id: str, sha256: str) -> bool:
    """Whether ``who`` may name this file in an action on the case: their own upload, or the case's evidence.

    Attaching a file links it to the case, and whoever may see the case may then read it; so a file
    someone else uploaded, or evidence of another case, must not be attachable.
    """
    return uploaded_by(request, who.person_id, sha256) or \
        incident_id in store_of(request).incidents_with_evidence(sha256)


def _attachable_photo(request: Request, who: Principal, incident_id: str, index: int, sha256: str) -> Evidence:
    """The Evidence for one ``evidence[index]`` of an action, or 422 (one answer for missing and not allowed,
    so the answer does not tell whether someone else's file exists)."""
    store = request.app.state.evidence
    path = store.locate(sha256) if may_attach(request, who, incident_id, sha256) else None
    if path is None:
        raise HTTPException(422, f"evidence[{index}]: no photo you uploaded or of this case with sha256 "
                                 f"'{sha256[:70]}'")
    return Evidence(kind="officer_photo", sha256=sha256, uri=str(path.relative_to(store.root)),
                    content_type=media_type(path))


@router.post("/tasks/{task_id}/actions", response_model=Outcome, responses=OUTCOME_RESPONSES,
             summary="officer: accept, arrive, resolve (note, photos) or reject as a false alarm (reason code)")
async def task_action(task_id: str, body: ActionIn, request: Request,
                      who: Principal = Depends(OFFICER)) -> JSONResponse:
    task = _own_task(request, who, task_id)
    if body.action == "reject" and body.reason not in REJECT_REASONS:
        raise HTTPException(422, f"reason: a false-alarm rejection needs one of {', '.join(REJECT_REASONS)}")
    photos = [_attachable_photo(request, who, task.incident_id, index, sha) for index, sha in enumerate(body.evidence)]
    reason = REJECT_REASONS.get(body.reason, body.reason) if body.action == "reject" else body.reason
    feedback = new_feedback(who, task.incident_id, body.action, task_id=task.task_id, note=body.note, evidence=photos,
                            reason=f"{body.reason}: {reason}" if body.reason else "")
    return await send_and_wait(request, feedback)


@router.get("/feedback/{feedback_id}", response_model=Outcome,
            summary="the processor's answer to an earlier action (when POST returned 202 pending)")
def feedback_outcome(feedback_id: str, request: Request, who: Principal = Depends(ANY_ROLE)) -> Outcome:
    sent = request.app.state.sent.get(feedback_id)
    store = store_of(request)
    if sent is None:  # sent before this server started: only the id can find the answer
        verdict = store.outcome(feedback_id)
        if verdict is None:
            raise HTTPException(404, f"feedback_id: no feedback '{feedback_id[:40]}' known to this server")
        if who.role == "officer" and not store.officer_may_see(who.person_id, verdict.incident_id):
            raise HTTPException(403, "feedback_id: not your case")
        return outcome(feedback_id, verdict.action, verdict)
    if who.role == "officer" and sent.actor != who.person_id:
        raise HTTPException(403, "feedback_id: not your action")
    return outcome(feedback_id, sent.action, store.outcome(feedback_id, sent.position))


def _declared_type(request: Request, allowed: list[str]) -> str:
    declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if declared not in allowed:
        raise HTTPException(415, f"content-type: '{declared or 'missing'}' is not allowed "
                                 f"(allowed: {', '.join(allowed)})")
    return declared


async def _read_body(request: Request, max_mb: float) -> bytes:
    """The whole body, refused with 413 as soon as it is larger than the limit (and 422 when empty)."""
    limit = int(max_mb * 1024 * 1024)
    too_large = HTTPException(413, f"body: larger than the {max_mb:g} MB upload limit")
    if int(request.headers.get("content-length") or 0) > limit:
        raise too_large
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise too_large
    if not data:
        raise HTTPException(422, "body: empty upload")
    return bytes(data)


@router.post("/uploads", status_code=201, response_model=StoredEvidence, response_model_exclude_unset=True,
             summary="officer: upload one photo as the raw request body (Content-Type image/jpeg, png or webp)",
             openapi_extra=UPLOAD_BODY)
async def upload(request: Request, who: Principal = Depends(OFFICER)) -> dict:
    web = city_of(request).web
    declared = _declared_type(request, web.upload_types)
    data = await _read_body(request, web.upload_max_mb)
    problem = await asyncio.to_thread(image_problem, data, declared)
    if problem is not None:
        raise HTTPException(415, f"body: {problem}")
    saved = await asyncio.to_thread(request.app.state.evidence.put, data, "officer_photo", declared)
    await asyncio.to_thread(store_of(request).add_upload, saved.sha256, who.person_id, now_utc().replace(tzinfo=None))
    return {**saved.asdict_deep(), "url": evidence_url(saved.sha256), "size": len(data)}
