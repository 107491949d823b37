"""Supervisors: who viewed which evidence file or exported which case, when, and why (the access log).

Filters combine with AND: ``person``, ``role``, ``case`` (incident id), ``sha256`` (views of that file),
``what`` (``evidence`` or ``export``) and local days ``from``/``to`` (both included); newest first,
``page``/``per_page`` (≤ 200).  Only supervisors may read it: the log says what each person looked at.

Example::

    GET /api/access-log?case=9f2c…&from=2026-11-01&to=2026-11-30     (a supervisor's token)
    -> {"total": 3, "page": 1, "per_page": 50, "accesses": [{"at": "2026-11-21T01:40:11.505Z",
        "person_id": "U001", "name": "…", "role": "operator", "what": "evidence", "target": "41d1…",
        "incident_id": "9f2c…", "reason": ""}, …]}
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Literal, Optional
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel

from contract import to_iso
from history.queries import Access, AccessSearch
from nonsite.config import City
from nonsite.evidence import SHA256
from web.api.deps import city_of, store_of
from web.auth import Principal
from web.security import require

router = APIRouter(prefix="/api", tags=["privacy"])
SUPERVISOR = require("supervisor")
MAX_PER_PAGE = 200


class AccessOut(BaseModel):
    at: str
    person_id: str
    name: Optional[str]
    role: str
    what: str
    target: str
    incident_id: Optional[str]
    reason: str


class AccessPageOut(BaseModel):
    """GET /api/access-log: one page of the rows the filters keep, newest first, and how many match in all."""

    total: int
    page: int
    per_page: int
    accesses: list[AccessOut]


@router.get("/access-log", response_model=AccessPageOut,
            summary="supervisors: who viewed which evidence file or exported which case (by person, case, file, "
                    "role, days)")
def access_log(request: Request, person: Optional[str] = Query(None, max_length=128),
               case: Optional[str] = Query(None, max_length=128),
               sha256: Optional[str] = Query(None, max_length=64),
               role: Optional[Literal["operator", "supervisor", "officer"]] = None,
               what: Optional[Literal["evidence", "export"]] = None,
               first: Optional[date] = Query(None, alias="from", description="first day YYYY-MM-DD, local time"),
               last: Optional[date] = Query(None, alias="to", description="last day YYYY-MM-DD"),
               page: int = Query(1, ge=1, le=1_000_000), per_page: int = Query(50, ge=1, le=MAX_PER_PAGE),
               who: Principal = Depends(SUPERVISOR)) -> dict:
    if sha256 is not None and not SHA256.match(sha256):
        raise HTTPException(422, "sha256: expected 64 lowercase hex characters")
    if first and last and last < first:
        raise HTTPException(422, f"to: {last} is before from: {first}")
    city = city_of(request)
    until = _day_start(city, last + timedelta(days=1)) if last else None
    search = AccessSearch(person_id=person, role=role, incident_id=case, sha256=sha256, what=what,
                          since=_day_start(city, first), until=until, page=page, per_page=per_page)
    found = store_of(request).search_accesses(search)
    names = {o.id: o.name for o in city.officers} | {u.id: u.name for u in city.users}
    return {"total": found.total, "page": found.page, "per_page": found.per_page,
            "accesses": [_view(row, names) for row in found.accesses]}


def _day_start(city: City, day: Optional[date]) -> Optional[datetime]:
    """The first moment of a local day, as the naive UTC the tables hold."""
    if day is None:
        return None
    local = datetime.combine(day, time.min, ZoneInfo(city.system.city.timezone))
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def _view(row: Access, names: dict[str, str]) -> dict:
    return {"at": to_iso(row.at), "person_id": row.person_id, "name": names.get(row.person_id), "role": row.role,
            "what": row.what, "target": row.target, "incident_id": row.incident_id, "reason": row.reason}
