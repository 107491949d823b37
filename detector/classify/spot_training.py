"""Train spot heads from stored labelled crops, where the detector loads them: the detector's half of
``nonsite spots train``.

The web (which holds the labels, ``history.spot_labels``) runs this module as a process, so the web never
loads the embedding model and the training's CPU stays out of its event loop.  It reads one JSON document on
standard input: the detector settings (``detector`` in nonsite.yaml, as the caller has them), the evidence
folder, and per spot the crops' sha256 and labels; it writes one progress line per step on standard error
and one JSON line per spot on standard output: label counts, cross-validated figures, the head's hash and
where it was written, or ``error``.  Heads are written atomically (:func:`~detector.classify.spots.save_spot`);
a running detector takes them at the zone's next sample (:mod:`detector.classify.scenes`).

Example::

    echo '{"detector": {...}, "evidence_dir": "var/evidence", "spots": [{"camera_id": "cam-01",
          "zone_id": "z1", "scenario": "material_piling", "crops": [{"sha256": "...", "present": true}]}]}' \\
      | python -m detector.classify.spot_training
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

import cv2

from detector.classify.spots import LabelledCrop, save_spot, spot_file, train_spot
from detector.classify.tflite import ImageModel, beside_weights, project_path
from nonsite.config import DetectorSettings
from nonsite.evidence import EvidenceStore


@dataclass(frozen=True)
class SpotJob:
    """One spot to train: its crops (sha256 in the evidence store) and their labels."""

    camera_id: str
    zone_id: str
    scenario: str
    crops: list[tuple[str, bool]]

    @property
    def name(self) -> str:
        return f"{self.camera_id}/{self.zone_id}/{self.scenario}"


def embedder_path(settings: DetectorSettings) -> Path:
    """The embedding extractor as the detector finds it (a bare name beside the weights)."""
    return beside_weights(settings.scenes.embedder, settings.weights, project_path)


def train_job(job: SpotJob, embedder: ImageModel, store: EvidenceStore, spots_dir: Path,
              say: Callable[[str], None]) -> dict[str, Any]:
    """Read the job's crops, train its head and write it; the result line (or its error)."""
    crops, missing = [], 0
    for sha, present in job.crops:
        path = store.locate(sha)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path is not None else None
        if image is None:
            missing += 1
        else:
            crops.append(LabelledCrop(image, present))
    result: dict[str, Any] = {"camera_id": job.camera_id, "zone_id": job.zone_id, "scenario": job.scenario,
                              "missing_crops": missing}
    say(f"{job.name}: embedding {len(crops)} crops" + (f" ({missing} no longer in the store)" if missing else ""))
    try:
        head, report = train_spot(crops, embedder, job.scenario)
    except ValueError as exc:
        return {**result, "error": str(exc)}
    path = spot_file(spots_dir, job.camera_id, job.zone_id, job.scenario)
    save_spot(path, head)
    say(f"{job.name}: head {report.model_hash} written to {path}")
    return {**result, "label_counts": report.label_counts, "cv_precision": report.precision,
            "cv_recall": report.recall, "cv_accuracy": report.accuracy, "model_hash": report.model_hash,
            "ready": report.ready, "path": str(path)}


def run(request: dict[str, Any], out: TextIO, err: TextIO) -> int:
    """Train every spot of the request; 0, or 1 when the embedding model is missing."""
    settings = DetectorSettings.model_validate(request["detector"])
    store = EvidenceStore(Path(request["evidence_dir"]))
    spots_dir = project_path(settings.scenes.spots_dir)
    model = embedder_path(settings)

    def say(line: str) -> None:
        print(line, file=err, flush=True)

    if not model.is_file():
        say(f"detector.scenes.embedder: {model} not found (set it in nonsite.yaml, or NONSITE_EMBEDDER)")
        return 1
    say(f"loading {model.name}")
    embedder = ImageModel.load(model)
    for raw in request["spots"]:
        job = SpotJob(raw["camera_id"], raw["zone_id"], raw["scenario"],
                      [(c["sha256"], bool(c["present"])) for c in raw["crops"]])
        print(json.dumps(train_job(job, embedder, store, spots_dir, say)), file=out, flush=True)
    return 0


def main(stdin: Optional[TextIO] = None) -> int:
    return run(json.load(stdin or sys.stdin), sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
