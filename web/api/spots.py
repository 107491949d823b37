"""Camera spots' own scene classifiers, for operators: their labels and head versions, and the "retrain" button.

``GET /api/spots`` lists, per spot (camera, zone, scenario), the labelled crops stored so far (by label) and
the versions of its head (hash, label counts, cross-validated precision and recall, who trained it, when);
``POST /api/spots/train`` (``{"camera_id": "cam-07"}``, or ``{}`` for every camera) retrains them as
``nonsite spots train`` does (:mod:`web.spot_training`) and answers each spot's line.  A camera that is
unknown or has no labels yet is one 4xx line.

Example::

    POST /api/spots/train {"camera_id": "cam-07"}
    -> {"spots": [{"camera_id": "cam-07", "zone_id": "z-walk", "scenario": "material_piling",
                   "model_hash": "1a2b3c4d5e6f", "cv_precision": 1.0, ...}], "lines": ["cam-07/z-walk/..."]}
"""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import asdict
from typing import Any, Optional

import structlog
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request

from contract import to_iso
from history.spot_labels import labels, models
from nonsite.errors import CommandError
from web.api.deps import city_of, store_of
from web.auth import Principal
from web.security import OPERATOR
from web.spot_training import SpotsError, train

log = structlog.get_logger("web.api.spots")
router = APIRouter(prefix="/api", tags=["spots"])
_training = asyncio.Lock()  # one training at a time: it takes a CPU core for its duration


@router.get("/spots", summary="operators: each camera spot's labelled crops (by label) and its head's versions")
def spots(request: Request, camera_id: Optional[str] = Query(None, max_length=128),
          who: Principal = Depends(OPERATOR)) -> list[dict[str, Any]]:
    engine = store_of(request).engine
    counted = Counter((x.camera_id, x.zone_id, x.scenario, x.label) for x in labels(engine, camera_id))
    versions: dict[tuple[str, str, str], list[dict]] = {}
    for row in models(engine, camera_id):
        versions.setdefault((row["camera_id"], row["zone_id"], row["scenario"]), []).append(
            {"at": to_iso(row["at"]), "trained_by": row["trained_by"], "model_hash": row["model_hash"],
             "label_counts": row["label_counts"], "cv_precision": row["cv_precision"],
             "cv_recall": row["cv_recall"], "ready": row["ready"]})
    keys = sorted({k[:3] for k in counted} | set(versions))
    return [{"camera_id": c, "zone_id": z, "scenario": s,
             "labels": {"present": counted[(c, z, s, "present")], "absent": counted[(c, z, s, "absent")]},
             "models": versions.get((c, z, s), [])} for c, z, s in keys]


@router.post("/spots/train", responses={404: {"description": "unknown camera"},
                                        409: {"description": "no labelled crops yet, or a training is running"}},
             summary="operators: retrain the spot heads (of one camera) from their labelled crops")
async def train_spots(request: Request, body: dict[str, Any] = Body(default={}, description='{"camera_id": "..."}'),
                      who: Principal = Depends(OPERATOR)) -> dict[str, Any]:
    camera_id = body.get("camera_id")
    if camera_id is not None and not isinstance(camera_id, str):
        raise HTTPException(422, "camera_id: expected a camera id or nothing")
    city = city_of(request)
    if camera_id is not None and city.camera(camera_id) is None:
        raise HTTPException(404, f"camera_id: unknown camera '{camera_id}'")
    if _training.locked():
        raise HTTPException(409, "a spot training is already running; try again when it has finished")
    lines: list[str] = []
    async with _training:
        try:
            trained = await asyncio.to_thread(train, city, store_of(request).engine, camera_id, who.person_id,
                                              lines.append)
        except SpotsError as exc:
            raise HTTPException(409, str(exc)) from None
        except CommandError as exc:
            raise HTTPException(500, f"{exc}: {lines[-1] if lines else ''}".rstrip(": ")) from None
    log.info("web.spots_trained", person_id=who.person_id, camera_id=camera_id, spots=len(trained))
    return {"spots": [asdict(spot) for spot in trained], "lines": [spot.line() for spot in trained],
            "progress": lines}
