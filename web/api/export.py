"""One case's file (案卷) for a court or a review: ``GET /api/incidents/{id}/export.html``, printable HTML.

Its pictures are the public copies (faces and plates masked, docs/privacy.md), each with its own sha256;
a picture whose public copy could not be made is listed, not shown.

For operators, supervisors and the case's own officer (another officer: 403).  Supervisors get no
plate: not in the text, and no picture of the plate.  Every export is recorded in the access log
(who, role, when, the case, and the optional ``reason``).  The page is built by :mod:`web.case_file`.

Example::

    GET /api/incidents/9f2c…/export.html?reason=行政复议 2026-117     (Authorization: Bearer …)
    -> 200 text/html: the facts, every step of the audit log, every task, every image with its sha256
"""
from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from contract import CaseEvent, Incident
from history.facts import RECORD_KEEPING_ACTIONS
from history.retention import purged_at
from nonsite.evidence import EvidenceStore
from web.api.deps import city_of, store_of
from web.api.wall import PLATE_ROLES
from web.auth import Principal
from web.case_file import CaseFile, EvidenceCheck, render
from web.security import ANY_ROLE
from web.uploads import sniff_type
from web.views import now_utc, shown_copy

router = APIRouter(prefix="/api", tags=["wall"])
EXPORT = "export"  # the access log's ``what`` for a case export


def check_file(store: EvidenceStore, kind: str, sha256: str, show: bool, step: Optional[int] = None,
               purged: Optional[datetime] = None) -> EvidenceCheck:
    """The file of ``sha256`` in the store, hashed again; its bytes kept to show when intact, an image and ``show``.

    ``purged``: when the retention rule deleted it (then its absence is said as such, not as a missing file)."""
    path = store.locate(sha256)
    if path is None and purged is not None:
        return EvidenceCheck(kind, sha256, None, withheld=f"deleted on {purged:%Y-%m-%d} under the retention rule",
                             step=step, purged=True)
    if path is None:
        return EvidenceCheck(kind, sha256, None, withheld="no file with this sha256 in the evidence store", step=step)
    data = path.read_bytes()
    recomputed = hashlib.sha256(data).hexdigest()
    media_type = sniff_type(data) or ""
    if recomputed != sha256:
        why = "the stored file does not match the recorded sha256"
    elif not media_type:
        why = "not an image"
    elif not show:
        why = "a picture of the plate, not shown to this role"
    else:
        return EvidenceCheck(kind, sha256, recomputed, media_type, data, step=step)
    return EvidenceCheck(kind, sha256, recomputed, media_type, withheld=why, step=step)


def evidence_of(store: EvidenceStore, incident: Incident, events: list[CaseEvent], show_plate: bool,
                purged: Optional[dict[str, datetime]] = None) -> list[EvidenceCheck]:
    """The case's pictures, then the files its steps brought (officers' photos), each once; ``purged``: sha256 ->
    when the retention rule deleted it."""
    purged = purged or {}
    public = {item.sha256: shown_copy(item, "public") for item in incident.evidence}  # exports show public copies
    checks = [check_file(store, item.kind, public[item.sha256] or item.sha256, public[item.sha256] is not None and
                         (show_plate or item.kind != "plate"),
                         purged=purged.get(public[item.sha256] or item.sha256) or purged.get(item.sha256))
              for item in incident.evidence]
    listed = {item.sha256 for item in incident.evidence} | {sha for sha in public.values() if sha}
    for event in events:
        if event.action in RECORD_KEEPING_ACTIONS:  # a purge step lists the files it deleted: it brought none
            continue
        for sha256 in event.evidence:
            if sha256 not in listed:
                listed.add(sha256)
                checks.append(check_file(store, "officer_photo", sha256, True, step=event.seq,
                                         purged=purged.get(sha256)))
    return checks


@router.get("/incidents/{incident_id}/export.html", response_class=HTMLResponse,
            responses={403: {"description": "an officer not handling this case"}, 404: {"description": "no case"}},
            summary="one case's file for a court or a review: printable, self-contained HTML (logged)")
def export_case(incident_id: str, request: Request,
                reason: str = Query("", max_length=500, description="why it is exported (kept in the access log)"),
                who: Principal = Depends(ANY_ROLE)) -> HTMLResponse:
    city, store = city_of(request), store_of(request)
    facts = store.facts(incident_id)
    if facts is None:
        raise HTTPException(404, f"incident_id: unknown incident '{incident_id}'")
    if who.role == "officer" and not store.officer_may_see(who.person_id, incident_id):
        raise HTTPException(403, "incident_id: this case is not assigned to you")
    incident = facts.incident
    events = store.history(incident_id)
    show_plate = who.role in PLATE_ROLES
    files = {sha for item in incident.evidence for sha in (item.sha256, *item.masked.values())} | \
        {sha for event in events for sha in event.evidence}
    page = CaseFile(case=facts, events=events, tasks=store.tasks_of_incident(incident_id),
                    evidence=evidence_of(request.app.state.evidence, incident, events, show_plate,
                                         purged_at(store.engine, files)),
                    reader=f"{who.name} ({who.person_id}, {who.role})", reason=reason, made_at=now_utc(),
                    show_plate=show_plate)
    body = render(city, page)
    store.log_access(who.person_id, who.role, EXPORT, incident_id, incident_id, reason)
    disposition = f'inline; filename="case-{_file_safe(incident_id)}.html"'
    return HTMLResponse(body, headers={"Cache-Control": "no-store", "Content-Disposition": disposition})


def _file_safe(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in text)[:120]
