"""Evidence files (photos) by their sha256, to the users allowed to see a case they belong to.

The store itself is :mod:`nonsite.evidence`; file types are :mod:`web.uploads`.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse

from nonsite.evidence import SHA256
from web.uploads import media_type
from web.api.deps import store_of, uploaded_by
from web.auth import Principal
from web.security import ANY_ROLE

router = APIRouter(prefix="/api", tags=["evidence"])


def _may_read(request: Request, who: Principal, sha256: str) -> bool:
    """An officer reads their own uploads and the evidence of cases assigned to them; other roles read all."""
    if who.role != "officer":
        return True
    store = store_of(request)
    return uploaded_by(request, who.person_id, sha256) or any(
        store.officer_may_see(who.person_id, incident_id) for incident_id in store.incidents_with_evidence(sha256))


@router.get("/evidence/{sha256}", summary="an evidence file, to users allowed to see its case")
async def evidence_file(sha256: str, request: Request, who: Principal = Depends(ANY_ROLE)) -> FileResponse:
    if not SHA256.match(sha256):
        raise HTTPException(422, "sha256: expected 64 lowercase hex characters")
    if not _may_read(request, who, sha256):
        raise HTTPException(403, "sha256: this evidence belongs to a case not assigned to you")
    path = request.app.state.evidence.locate(sha256)
    if path is None:
        raise HTTPException(404, f"sha256: no evidence file '{sha256}' in the store")
    return FileResponse(path, media_type=media_type(path), headers={"Cache-Control": "private, max-age=3600"})
