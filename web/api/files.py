"""Evidence files (photos) by their sha256, to the users allowed to see a case they belong to.

Which copy of a picture a user may open (docs/privacy.md): the public copy (faces and plates masked) to
anyone who may see its case; the subject copy (bystanders' faces masked) to the case's handlers only
(operators, the case's officer); the original, when it has masked copies, to the handlers only and
with a stated ``reason``; a picture without masked copies (an officer's photo, masking off) as before.

Every file served is a row of the access log (who, role, when, the file, each case it belongs to, and the
``reason`` when one is given); a refused or failed read leaves none.  A file the retention rule deleted
answers 410 Gone, not 404: its hash and its case stay, only the bytes are gone.  The store itself is
:mod:`nonsite.evidence`; file types are :mod:`web.uploads`.

Example::

    GET /api/evidence/41d17bab…f0fed?reason=复核 2026-118     (Authorization: Bearer …)
    -> 200 image/jpeg, and one access_log row per case of the file
"""
from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse

from contract import Incident
from history.retention import purged_at
from history.spot_labels import is_spot_crop
from nonsite.evidence import SHA256
from web.uploads import media_type
from web.api.deps import store_of, uploaded_by
from web.api.wall import PLATE_ROLES
from web.auth import Principal
from web.security import ANY_ROLE

router = APIRouter(prefix="/api", tags=["evidence"])
EVIDENCE = "evidence"  # the access log's ``what`` for a view of an evidence file


def _may_read(request: Request, who: Principal, sha256: str, incident_ids: set[str]) -> bool:
    """An officer reads their own uploads and the evidence of cases assigned to them; other roles read all."""
    if who.role != "officer":
        return True
    store = store_of(request)
    return uploaded_by(request, who.person_id, sha256) or any(
        store.officer_may_see(who.person_id, incident_id) for incident_id in incident_ids)


def copy_of(incident: Optional[Incident], sha256: str) -> str:
    """What the file is to the case: ``original`` (a picture with masked copies), ``subject``, ``public``, or
    ``plain`` (a picture without masked copies, or a file the case's record does not list)."""
    for evidence in incident.evidence if incident else ():
        if evidence.sha256 == sha256 and evidence.masked:
            return "original"
        for variant, copy in evidence.masked.items():
            if copy == sha256 and copy != evidence.sha256:
                return variant
    return "plain"


def _refusal(who: Principal, copies: set[str], reason: str) -> Optional[HTTPException]:
    """Why ``who`` may not open a file that is these copies of its cases' pictures, or None when they may."""
    handles = who.role in PLATE_ROLES
    if "plain" in copies or "public" in copies:
        return None
    if not handles:
        return HTTPException(403, "sha256: this picture shows bystanders unmasked; open its public copy")
    if "original" in copies and not reason.strip():
        return HTTPException(422, "reason: opening the original of a masked picture needs a reason (it is logged)")
    return None


@router.get("/evidence/{sha256}", summary="an evidence file, to users allowed to see its case (each view logged)",
            responses={403: {"description": "an officer not handling its case"},
                       404: {"description": "no such file"}, 410: {"description": "deleted by the retention rule"}})
def evidence_file(sha256: str, request: Request, who: Principal = Depends(ANY_ROLE),
                  reason: str = Query("", max_length=500, description="why it is viewed (kept in the access log)"),
                  ) -> FileResponse:
    if not SHA256.match(sha256):
        raise HTTPException(422, "sha256: expected 64 lowercase hex characters")
    store = store_of(request)
    incident_ids = store.incidents_with_evidence(sha256)
    if not _may_read(request, who, sha256, incident_ids):
        raise HTTPException(403, "sha256: this evidence belongs to a case not assigned to you")
    copies = {copy_of(store.incident(i), sha256) for i in incident_ids} or {"plain"}
    if is_spot_crop(store.engine, sha256):  # a spot's training crop is cut from the unmasked original
        copies = {"original"}
    refusal = _refusal(who, copies, reason)
    if refusal is not None:
        raise refusal
    path = request.app.state.evidence.locate(sha256)
    if path is None:
        purged = purged_at(store.engine, [sha256]).get(sha256)
        if purged is not None:
            raise HTTPException(410, f"sha256: evidence file '{sha256}' was deleted on {purged:%Y-%m-%d} under the "
                                     "retention rule; its hash and its case's record are kept")
        raise HTTPException(404, f"sha256: no evidence file '{sha256}' in the store")
    store.log_evidence_view(who.person_id, who.role, sha256, incident_ids, reason)
    # no-cache: the browser asks again before each reuse, so a shared desk PC does not show the next user a file
    # that user's view of would never be logged
    return FileResponse(path, media_type=media_type(path), headers={"Cache-Control": "private, no-cache"})
