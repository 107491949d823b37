"""Operators and supervisors: search the whole history of cases, page by page (the system of record).

Example: ``GET /api/cases?camera=cam-01&from=2026-10-01&to=2026-10-31&page=2`` — the second page of that
camera's October cases, newest first.  Only the roles handling cases may search by plate, and only they
see plates in the answer."""
from __future__ import annotations

import re
from datetime import date
from typing import Any, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from contract.fields import PLATE_PATTERN
from history.queries import CaseSearch
from web.api.deps import city_of, store_of
from web.api.schemas import CasePage
from web.api.wall import PLATE_ROLES, for_role
from web.auth import Principal
from web.security import LIVE_ROLES
from web.views import incident_view

router = APIRouter(prefix="/api", tags=["cases"])
MAX_PER_PAGE = 200


def _id() -> Any:
    """A new Query per parameter: FastAPI binds one Query object to one parameter only."""
    return Query(None, max_length=128)


@router.get("/cases", response_model=CasePage, response_model_exclude_unset=True,
            summary="search every case ever filed: by id, camera, grid, scenario, state, plate and filing day")
def cases(request: Request, incident_id: Optional[str] = _id(), camera: Optional[str] = _id(),
          grid: Optional[str] = _id(), scenario: Optional[str] = _id(),
          state: Optional[str] = Query(None, max_length=32),
          plate: Optional[str] = Query(None, max_length=16),
          first: Optional[date] = Query(None, alias="from", description="first filing day YYYY-MM-DD, local time"),
          last: Optional[date] = Query(None, alias="to", description="last filing day YYYY-MM-DD"),
          page: int = Query(1, ge=1, le=1_000_000), per_page: int = Query(50, ge=1, le=MAX_PER_PAGE),
          who: Principal = Depends(LIVE_ROLES)) -> dict:
    if plate is not None and who.role not in PLATE_ROLES:
        raise HTTPException(403, "plate: only the roles handling cases may search by plate")
    if plate is not None and not re.match(PLATE_PATTERN, plate):
        raise HTTPException(422, f"plate: '{plate}' is not a plate number")
    if first and last and last < first:
        raise HTTPException(422, f"to: {last} is before from: {first}")
    search = CaseSearch(incident_id=incident_id, camera_id=camera, grid_id=grid, scenario=scenario, state=state,
                        plate=plate, day_from=first, day_to=last, page=page, per_page=per_page)
    city, store = city_of(request), store_of(request)
    found = store.search(search)
    return {"page": found.page, "per_page": found.per_page, "total": found.total,
            "cases": [for_role(who, incident_view(city, store, case)) for case in found.cases]}
