"""Supervisors: legal holds (法律保全) on cases, which the retention purge never touches.

Placing and releasing a hold each need a reason; each is a row of ``holds`` and a step of the case's audit
log (:mod:`history.custody`).  A case has at most one hold in force.

Example::

    POST /api/incidents/9f2c…/hold          {"reason": "行政诉讼 (2027)浙0102行初12号"}   -> 201, the hold
    POST /api/incidents/9f2c…/hold/release  {"reason": "judgment final"}                -> 200, the hold released
    GET  /api/incidents/9f2c…/holds                                                    -> every hold, oldest first
"""
from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from contract import CaseEvent, to_iso
from history.custody import REASON_MAX, CustodyError, Hold, HoldConflict, NoSuchCase, holds_of, place_hold, \
    release_hold
from web.api.deps import known_incident, store_of
from web.api.schemas import Strict
from web.auth import Principal
from web.security import require

router = APIRouter(prefix="/api", tags=["privacy"])
SUPERVISOR = require("supervisor")


class HoldIn(Strict):
    reason: str = Field(min_length=1, max_length=REASON_MAX, description="why (a court case, an appeal, an audit)")


class HoldOut(BaseModel):
    incident_id: str
    in_force: bool
    held_by: str
    held_at: str
    reason: str
    released_by: Optional[str] = None
    released_at: Optional[str] = None
    release_reason: Optional[str] = None
    step: Optional[int] = None  # the seq of the audit log step this call wrote


class HoldsOut(BaseModel):
    holds: list[HoldOut]


@router.post("/incidents/{incident_id}/hold", response_model=HoldOut, status_code=201,
             responses={404: {"description": "no case"}, 409: {"description": "already on hold"}},
             summary="supervisors: put a case on legal hold (a reason is required): its evidence is never purged")
def hold(incident_id: str, body: HoldIn, request: Request, who: Principal = Depends(SUPERVISOR)) -> JSONResponse:
    try:
        placed, step = place_hold(store_of(request).engine, incident_id, who.person_id, body.reason)
    except CustodyError as exc:
        raise HTTPException(_status(exc), str(exc)) from None
    return JSONResponse(_view(placed, step), status_code=201)


@router.post("/incidents/{incident_id}/hold/release", response_model=HoldOut,
             responses={404: {"description": "no case"}, 409: {"description": "not on hold"}},
             summary="supervisors: release a case's legal hold (a reason is required)")
def release(incident_id: str, body: HoldIn, request: Request, who: Principal = Depends(SUPERVISOR)) -> dict:
    try:
        released, step = release_hold(store_of(request).engine, incident_id, who.person_id, body.reason)
    except CustodyError as exc:
        raise HTTPException(_status(exc), str(exc)) from None
    return _view(released, step)


@router.get("/incidents/{incident_id}/holds", response_model=HoldsOut,
            summary="supervisors: every legal hold of a case, oldest first")
def holds(incident_id: str, request: Request, who: Principal = Depends(SUPERVISOR)) -> dict:
    known_incident(request, incident_id)
    return {"holds": [_view(found) for found in holds_of(store_of(request).engine, incident_id)]}


def _status(error: CustodyError) -> int:
    if isinstance(error, NoSuchCase):
        return 404
    return 409 if isinstance(error, HoldConflict) else 422


def _view(found: Hold, step: Optional[CaseEvent] = None) -> dict:
    return {"incident_id": found.incident_id, "in_force": found.released_at is None, "held_by": found.held_by,
            "held_at": to_iso(found.held_at), "reason": found.reason, "released_by": found.released_by,
            "released_at": to_iso(found.released_at) if found.released_at else None,
            "release_reason": found.release_reason, "step": step.seq if step else None}
