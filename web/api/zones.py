"""Operators: a camera's zones and privacy zones, read and saved by the zone editor (page ``/zones``).

``GET`` answers what ``cameras.yaml`` holds now (read from the file, so a save shows at once), the camera's
latest snapshot, the zone kinds with the scenarios each enables (from ``scenarios.yaml``), the scenarios no
camera has a zone for, and the file's ``version``.  ``PUT`` takes ``{"zones": [...], "privacy_zones": [...],
"version": "..."}``: checked with the config loader's models (422, one line naming the field), refused if the
file changed since that version (409) or if the whole configuration would no longer load (422 naming the
file), then written to ``cameras.yaml`` (:mod:`nonsite.config.saving`) and recorded in ``config_changes``
(who, when, before and after; ``GET .../zone-changes``).  Zones equal to the file's change nothing.  The
running detector reads its zones at start: it uses the new ones from its next start.

The snapshot is the newest evidence picture of the camera in the case store, as the detector stored it:
a whole frame (``first_seen``, else ``clean`` or ``annotated``; a plate crop is no view), in its public
masked copy when it has masked copies (docs/privacy.md), with the privacy zones already black.  The
detector saves no other frames; a camera without a case has no snapshot, and the page draws on a blank view.

Example::

    PUT /api/cameras/cam-02/zones   (an operator's token)
    {"version": "3f1c…", "zones": [{"id": "z-kerb", "kind": "sidewalk", "polygon": [[0, 0.42], [0.3, 0.42],
     [0.26, 0.56]]}], "privacy_zones": []}
    -> 200 {"camera_id": "cam-02", "version": "9a07…", "zones": [...], ...}
    {"zones": [{"id": "z-kerb", "kind": "sidewalk", "polygon": [[0, 0], [1, 1]]}]}
    -> 422 {"error": "zones[0].polygon: a polygon needs at least 3 points, got 2"}
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel

from contract import Evidence, Incident, to_iso
from history.config_changes import ConfigChange, changes_of, record_change
from history.queries import CaseSearch
from nonsite.config import ZONE_KINDS, Camera, City, ConfigError, Scenario, load_city
from nonsite.config.saving import (CAMERAS, EDITED_KEYS, CameraZones, SavedZones, StaleFile, camera_zones,
                                   read_cameras, save_camera_zones)
from web.api.deps import city_of, store_of
from web.auth import Principal
from web.security import LIVE_ROLES, OPERATOR
from web.views import evidence_url, shown_copy

log = structlog.get_logger("web.zones")
router = APIRouter(prefix="/api", tags=["zones"])
PRIVACY = "privacy"  # the editor's kind for a privacy zone (saved under privacy_zones)
KIND_LABELS = {"sidewalk": "人行道 Sidewalk", "no_vending": "禁止摆摊 No vending", "storefront": "门前 Storefront",
               "no_piling": "禁止堆放 No piling", "road": "道路 Road", "no_drying": "禁止晾晒 No drying",
               "no_ads": "禁止广告 No ads", "plaza": "广场 Plaza", PRIVACY: "隐私遮挡 Privacy (blacked out)"}
SNAPSHOT_KINDS = ("first_seen", "clean", "annotated")  # whole frames, the one without drawings first
CASES_SEARCHED = 20  # the camera's newest cases looked at for a snapshot whose file is still in the store
SNAPSHOT_REASON = "区域编辑 zone editor"  # the access log's reason for viewing the snapshot
APPLIES = "检测程序下次启动时生效 The running detector uses the saved zones from its next start"


class ScenarioRef(BaseModel):
    id: str
    label_zh: str
    label_en: str
    enabled: bool


class KindOut(BaseModel):
    kind: str
    label: str
    scenarios: list[ScenarioRef]  # the scenarios a zone of this kind enables (enabled or not)


class SnapshotOut(BaseModel):
    url: str
    sha256: str
    kind: str
    incident_id: str
    taken_at: str


class ZonesOut(BaseModel):
    camera_id: str
    name: str
    version: str  # of cameras.yaml: send it back with PUT
    zones: list[dict[str, Any]]
    privacy_zones: list[dict[str, Any]]
    snapshot: Optional[SnapshotOut]
    kinds: list[KindOut]
    anywhere: list[ScenarioRef]  # scenarios without zone kinds: they look at the whole frame of every camera
    unwatched: list[ScenarioRef]  # enabled scenarios no camera has a zone for: they start nowhere
    applies: str


class ZoneChangeOut(BaseModel):
    at: str
    person_id: str
    name: Optional[str]
    role: str
    before: dict[str, Any]
    after: dict[str, Any]


@router.get("/cameras/{camera_id}/zones", response_model=ZonesOut,
            summary="operators: a camera's zones and privacy zones as cameras.yaml holds them, its latest snapshot, "
                    "and the scenarios each zone kind enables")
def zones(camera_id: str, request: Request, who: Principal = Depends(OPERATOR)) -> dict:
    city, camera = _configured(request, camera_id)
    return _zones_view(request, city, camera)


@router.put("/cameras/{camera_id}/zones", response_model=ZonesOut,
            responses={409: {"description": "cameras.yaml changed since `version`"},
                       422: {"description": "a zone is not valid, or the configuration would not load"}},
            summary="operators: save a camera's zones and privacy zones to cameras.yaml (recorded in "
                    "config_changes; the detector uses them from its next start)")
def save_zones(camera_id: str, request: Request,
               body: dict[str, Any] = Body(..., description='{"zones": [...], "privacy_zones": [...], '
                                                            '"version": "<from GET>"}'),
               who: Principal = Depends(OPERATOR)) -> dict:
    version = body.get("version")
    if version is not None and not isinstance(version, str):
        raise HTTPException(422, "version: expected the version string that GET answered")
    city, _ = _configured(request, camera_id)
    try:
        wanted = camera_zones({key: value for key, value in body.items() if key != "version"})
        saved = save_camera_zones(city.root, camera_id, wanted, version, _recorder(request, who, camera_id))
    except StaleFile as exc:
        raise HTTPException(409, str(exc)) from None
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    log.info("web.zones_saved", camera_id=camera_id, person_id=who.person_id, version=saved.version,
             zones=len(wanted.zones), privacy_zones=len(wanted.privacy_zones))
    city, camera = _configured(request, camera_id)
    return _zones_view(request, city, camera)


@router.get("/cameras/{camera_id}/zone-changes", response_model=list[ZoneChangeOut],
            summary="operators and supervisors: who changed the camera's zones, when, before and after (newest "
                    "first)")
def zone_changes(camera_id: str, request: Request, who: Principal = Depends(LIVE_ROLES)) -> list[dict]:
    city = city_of(request)
    names = {o.id: o.name for o in city.officers} | {u.id: u.name for u in city.users}
    return [{"at": to_iso(change.at), "person_id": change.person_id, "name": names.get(change.person_id),
             "role": change.role, "before": change.before, "after": change.after}
            for change in changes_of(store_of(request).engine, camera_id) if change.file == CAMERAS]


# ------------------------------------------------------------------ helpers
def _configured(request: Request, camera_id: str) -> tuple[City, Camera]:
    """The configuration as the files hold it now (the app's own copy was read at its start), and the camera."""
    try:
        city = load_city(city_of(request).root)
    except ConfigError as exc:
        raise HTTPException(503, f"the configuration does not load: {exc}") from None
    camera = city.camera(camera_id)
    if camera is None:
        raise HTTPException(404, f"camera_id: unknown camera '{camera_id}'")
    return city, camera


def _recorder(request: Request, who: Principal, camera_id: str):
    engine = store_of(request).engine

    def record(saved: SavedZones) -> None:
        record_change(engine, ConfigChange(datetime.utcnow(), who.person_id, who.role, CAMERAS, camera_id, "zones",
                                           saved.before, saved.after))
    return record


def _zones_view(request: Request, city: City, camera: Camera) -> dict:
    edited = CameraZones(zones=camera.zones, privacy_zones=camera.privacy_zones)
    return {"camera_id": camera.id, "name": camera.name, "version": read_cameras(city.root)[1],
            **{key: edited.items(key) for key in EDITED_KEYS},
            "snapshot": latest_snapshot(request, camera.id), "kinds": zone_kinds(city.scenarios),
            "anywhere": [_ref(s) for s in city.scenarios if not s.zone_kinds], "unwatched": unwatched(city),
            "applies": APPLIES}


def unwatched(city: City) -> list[dict]:
    """The enabled scenarios with zone kinds of which no camera has a zone (the loader warns of them too)."""
    present = {zone.kind for camera in city.cameras for zone in camera.zones}
    return [_ref(s) for s in city.scenarios if s.enabled and s.zone_kinds and not present & set(s.zone_kinds)]


def zone_kinds(scenarios: list[Scenario]) -> list[dict]:
    """Every zone kind with the scenarios it enables: the kinds some scenario uses first (in the scenarios'
    order), then the others (no scenario looks at them), then ``privacy``."""
    used = list(dict.fromkeys(kind for s in scenarios for kind in s.zone_kinds))
    ordered = used + [kind for kind in ZONE_KINDS if kind not in used] + [PRIVACY]
    return [{"kind": kind, "label": KIND_LABELS.get(kind, kind),
             "scenarios": [_ref(s) for s in scenarios if kind in s.zone_kinds]} for kind in ordered]


def _ref(scenario: Scenario) -> dict:
    return {"id": scenario.id, "label_zh": scenario.label_zh, "label_en": scenario.label_en,
            "enabled": scenario.enabled}


def latest_snapshot(request: Request, camera_id: str) -> Optional[dict]:
    """The newest whole frame of the camera whose shown copy is still in the evidence store (see the module)."""
    cases = store_of(request).search(CaseSearch(camera_id=camera_id, per_page=CASES_SEARCHED)).cases
    for incident in cases:
        if incident.cameras and incident.cameras != [camera_id]:
            continue  # a case several cameras saw may hold another camera's picture
        for picture in _frames(incident):
            shown = shown_copy(picture, "public")
            if shown and request.app.state.evidence.locate(shown) is not None:
                return {"url": f"{evidence_url(shown)}?reason={quote(SNAPSHOT_REASON)}", "sha256": shown,
                        "kind": picture.kind, "incident_id": incident.incident_id, "taken_at": incident.first_seen}
    return None


def _frames(incident: Incident) -> list[Evidence]:
    frames = [e for e in incident.evidence if e.kind in SNAPSHOT_KINDS]
    return sorted(frames, key=lambda e: SNAPSHOT_KINDS.index(e.kind))
