"""``nonsite spots train [--camera ID]`` and the operators' "retrain" button: spot heads from the stored labels.

The labels are in the system of record (``history.spot_labels``), the heads are the detector's
(``detector.classify.spot_training``, run as its own process: the web never loads the embedding model).  For
each spot (camera, zone, scenario with a scene classifier) that has labels, the trainer embeds its crops,
cross-validates, writes the head where the detector loads it, and its version (hash, label counts, figures,
who, when) is recorded in ``spot_models``.  A detector running picks the head up at the zone's next sample.

Bad input is one line (:class:`SpotsError`): an unknown camera, a camera whose spots have no labels yet.

Example::

    $ nonsite spots train --camera cam-07
    cam-07/z-walk/material_piling: present 6, absent 7; cross-validated precision 1.00, recall 0.83; model
      1a2b3c4d5e6f (ready), written to var/spots/cam-07/z-walk/material_piling.npz
"""
from __future__ import annotations

import argparse
import getpass
import json
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional

import structlog
from sqlalchemy import Engine

from history.spot_labels import SpotLabel, labels, record_model
from nonsite.config import City
from nonsite.errors import CommandError
from web.spot_labels import learns

log = structlog.get_logger("web.spot_training")

TRAINER = "detector.classify.spot_training"
TIMEOUT_S = 1800.0


class SpotsError(ValueError):
    """Nothing to train, said in one line (unknown camera, no labels)."""


@dataclass(frozen=True)
class TrainedSpot:
    """What one spot's training gave (``error`` set when it could not be trained)."""

    camera_id: str
    zone_id: str
    scenario: str
    label_counts: dict[str, int]
    model_hash: Optional[str] = None
    cv_precision: Optional[float] = None
    cv_recall: Optional[float] = None
    cv_accuracy: Optional[float] = None
    ready: bool = False
    path: Optional[str] = None
    missing_crops: int = 0
    error: Optional[str] = None

    def line(self) -> str:
        """The spot's line for the person who asked."""
        name = f"{self.camera_id}/{self.zone_id}/{self.scenario}"
        counts = f"present {self.label_counts.get('present', 0)}, absent {self.label_counts.get('absent', 0)}"
        if self.error:
            return f"{name}: {counts}; not trained: {self.error}"
        figures = (f"cross-validated precision {_figure(self.cv_precision)}, recall {_figure(self.cv_recall)}"
                   if self.cv_precision is not None or self.cv_recall is not None
                   else "too few crops to cross-validate")
        state = "ready" if self.ready else "not used yet: the detector needs 5 crops of each label"
        return f"{name}: {counts}; {figures}; model {self.model_hash} ({state}), written to {self.path}"


def _figure(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def spots_to_train(city: City, stored: list[SpotLabel], camera_id: Optional[str]) -> dict[tuple[str, str, str],
                                                                                          list[SpotLabel]]:
    """The labels per spot (camera, zone, scenario) that can be trained now; :class:`SpotsError` when none."""
    if camera_id is not None and city.camera(camera_id) is None:
        known = ", ".join(sorted(c.id for c in city.cameras))
        raise SpotsError(f"unknown camera '{camera_id}' (cameras: {known})")
    spots: dict[tuple[str, str, str], list[SpotLabel]] = {}
    for label in stored:
        camera = city.camera(label.camera_id)
        if camera is None or not any(z.id == label.zone_id for z in camera.zones) or not learns(city, label.scenario):
            continue  # a camera, zone or scene classifier the configuration no longer has
        spots.setdefault((label.camera_id, label.zone_id, label.scenario), []).append(label)
    if not spots:
        where = f"camera '{camera_id}'" if camera_id else "no camera"
        raise SpotsError(f"{where} has no labelled crops yet: operators' review decisions, officers' rejections "
                         f"and camera-verified closures of its scene alarms store them")
    return spots


def run_trainer(city: City, spots: dict[tuple[str, str, str], list[SpotLabel]],
                progress: Optional[Callable[[str], None]] = None) -> list[dict[str, Any]]:
    """Run the detector's trainer on these spots; its result lines.  ``progress`` gets its progress lines as
    they come (None: they are logged)."""
    request = {"detector": city.detector.model_dump(mode="json"),
               "evidence_dir": str(city.resolve_path(city.detector.evidence_dir)),
               "spots": [{"camera_id": c, "zone_id": z, "scenario": s,
                          "crops": [{"sha256": label.crop_sha256, "present": label.present} for label in found]}
                         for (c, z, s), found in sorted(spots.items())]}
    say = progress or (lambda line: log.info("spot training", line=line))
    process = subprocess.Popen([sys.executable, "-m", TRAINER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=str(city.root.parent))
    assert process.stdin is not None and process.stderr is not None and process.stdout is not None
    process.stdin.write(json.dumps(request))
    process.stdin.close()
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)  # never a full pipe
    reader.start()
    for line in process.stderr:  # the trainer's progress, line by line as it goes
        if line.strip() and not line.startswith("INFO: Created TensorFlow Lite"):
            say(line.rstrip())
    reader.join(TIMEOUT_S)
    results = [json.loads(line) for line in lines if line.strip()]
    if process.wait(TIMEOUT_S) != 0:
        raise CommandError("the spot trainer failed (its last line is above)")
    return results


def train(city: City, engine: Engine, camera_id: Optional[str], by: str,
          progress: Optional[Callable[[str], None]] = None) -> list[TrainedSpot]:
    """Train the spots (of one camera) from their labels and record each head's version."""
    spots = spots_to_train(city, labels(engine, camera_id), camera_id)
    counts = {key: dict(Counter(label.label for label in found)) for key, found in spots.items()}
    trained = []
    for result in run_trainer(city, spots, progress):
        key = (result["camera_id"], result["zone_id"], result["scenario"])
        spot = TrainedSpot(*key, label_counts={"present": counts[key].get("present", 0),
                                               "absent": counts[key].get("absent", 0)},
                           **{k: result[k] for k in ("model_hash", "cv_precision", "cv_recall", "cv_accuracy",
                                                     "ready", "path", "missing_crops", "error") if k in result})
        if spot.model_hash:
            record_model(engine, datetime.now(timezone.utc).replace(tzinfo=None), by, *key, spot.model_hash,
                         result["label_counts"], spot.cv_precision, spot.cv_recall, spot.cv_accuracy, spot.ready)
        log.info("spot trained", spot="/".join(key), by=by, hash=spot.model_hash, error=spot.error)
        trained.append(spot)
    return trained


def command(args: argparse.Namespace, city: Optional[City]) -> int:
    """``nonsite spots train``: one line per spot; exit 1 with one line when there is nothing to train."""
    from history.database import DatabaseError, open_database

    assert city is not None
    try:
        engine = open_database(city.system.history.database, city.root.parent)
    except DatabaseError as exc:
        raise CommandError(str(exc)) from None
    try:
        trained = train(city, engine, args.camera, args.by or f"cli-{getpass.getuser()}",
                        lambda line: print(line, file=sys.stderr, flush=True))
    except SpotsError as exc:
        raise CommandError(str(exc)) from None
    finally:
        engine.dispose()
    for spot in trained:
        print(spot.line(), flush=True)
    return 0 if all(spot.error is None for spot in trained) else 1
