"""Where a labelled crop of a camera spot is cut: in the web, as it records the case event that decided it.

The web holds what the cut needs and the detector does not keep: the cameras' zones (``cameras.yaml``) and
the case's evidence pictures (the evidence store).  The crop is the zone's bounding box cut from the case's
original evidence picture at :func:`nonsite.crops.zone_pixels`, the box the detector's scene heads are shown
(:func:`nonsite.crops.zone_crop`), so a spot's head learns from what the detector will show it.  The web
decodes and encodes with Pillow (it installs no OpenCV).  It is stored under its sha256 in the evidence
store (JPEG, quality 95) and linked to its case, so custody and retention treat it as the case's evidence.

A crop that cannot be cut (the picture is no longer in the store, the zone was removed from the camera)
is no label: counted, and said in one log line; the case event is recorded all the same.

Example::

    labeller = spot_labeller(city, EvidenceStore(Path("var/evidence")), "sqlite")
    HistoryWriter(engine, "Asia/Shanghai", "nonsite.feedback", labeller=labeller)
"""
from __future__ import annotations

from typing import Optional

import io

import structlog
from PIL import Image, UnidentifiedImageError
from prometheus_client import Counter

from history.spot_labels import Cut, SpotLabeller
from nonsite.config import City
from nonsite.crops import zone_box, zone_pixels
from nonsite.evidence import EvidenceStore

log = structlog.get_logger("web.spot_labels")

JPEG_QUALITY = 95
NOT_CUT = Counter("nonsite_web_spot_crops_failed_total", "decisions whose spot crop could not be cut", ["reason"])
CUT = Counter("nonsite_web_spot_crops_total", "labelled spot crops stored")


def learns(city: City, scenario_id: str) -> bool:
    """Whether a scenario has spot heads (a scene classifier): only its spots' crops are kept."""
    scenario = city.scenario(scenario_id)
    return scenario is not None and scenario.scene is not None and scenario.scene.enabled


def cut_spot(city: City, store: EvidenceStore, camera_id: str, zone_id: str, sha256: str) -> Optional[Cut]:
    """Cut the zone of ``camera_id`` from the evidence picture ``sha256`` and store the crop; None, said in the
    log, when it cannot be done."""
    camera = city.camera(camera_id)
    zone = next((z for z in camera.zones if z.id == zone_id), None) if camera is not None else None
    path = store.locate(sha256)
    image = _decoded(path) if path is not None else None
    reason = ("unknown camera" if camera is None else "no such zone on the camera" if zone is None
              else "evidence picture not in the store" if path is None else "unreadable picture" if image is None
              else None)
    if reason is not None:
        NOT_CUT.labels(reason).inc()
        log.warning("spot crop not cut", camera=camera_id, zone=zone_id, evidence=sha256, reason=reason)
        return None
    assert zone is not None and image is not None
    polygon = [tuple(point) for point in zone.polygon]
    encoded = io.BytesIO()
    image.crop(zone_pixels(polygon, (image.height, image.width))).save(encoded, "JPEG", quality=JPEG_QUALITY)
    CUT.inc()
    saved = store.put(encoded.getvalue(), "clean")
    return Cut(saved.sha256, tuple(round(v, 6) for v in zone_box(polygon)))


def _decoded(path) -> Optional[Image.Image]:
    try:
        with Image.open(path) as picture:
            return picture.convert("RGB")
    except (OSError, UnidentifiedImageError):
        return None


def spot_labeller(city: City, store: EvidenceStore, dialect: str) -> SpotLabeller:
    """The labeller the web's history writer runs on the case events it records."""
    return SpotLabeller(lambda camera, zone, sha: cut_spot(city, store, camera, zone, sha),
                        lambda scenario: learns(city, scenario), dialect)
