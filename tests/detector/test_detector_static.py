"""material_piling with a model that has no pile class: the static-foreground rule on real photos.

A real street photo is the scene; a real photo of dumped garbage bags is pasted into a
``no_piling`` zone for a while, then taken away.  The model is scripted (it sees nothing, or a car
where the pile is), because what is tested is the background model, tracking and the rule timing.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from nonsite.evidence import EvidenceStore, verify
from detector.inference import DetectedObject
from detector.pipeline import Pipeline
from detector.sources import Frame
from nonsite.config import Camera, DetectorSettings, MotionSettings, Scenario

EPOCH = 1_800_000_000.0
PILE_BOX = (0.62, 0.70, 0.78, 0.92)  # where the pile is pasted (normalised)
PILING = Scenario(id="material_piling", label_zh="乱堆物料", label_en="Piled materials", rule="static_foreground",
                  classes=["pile", "static_object"], zone_kinds=["no_piling"], dwell_s=60, confidence=0.35)


class Scripted:
    max_batch = 8

    def __init__(self, objects=()):
        self.objects = list(objects)

    @property
    def class_names(self) -> set[str]:
        return {"person", "car"}  # no "pile": the background model stands in

    def detect(self, images):
        return [list(self.objects) for _ in images]


def scene_frames(media_dir: Path):
    street = cv2.imread(str(media_dir / "cctv_street_busstop_parked_cars_beijing_uadetrac_06.jpg"))
    pile = cv2.imread(str(media_dir / "garbage_bags_pile_sidewalk_amsterdam_01.jpg"))
    height, width = street.shape[:2]
    x1, y1, x2, y2 = (int(PILE_BOX[0] * width), int(PILE_BOX[1] * height), int(PILE_BOX[2] * width),
                      int(PILE_BOX[3] * height))
    piled = street.copy()
    piled[y1:y2, x1:x2] = cv2.resize(pile, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(3)

    def noisy(image):
        return np.clip(image.astype(np.int16) + rng.normal(0, 3, image.shape).astype(np.int16), 0, 255).astype(
            np.uint8)

    return noisy, street, piled


def camera() -> Camera:
    return Camera(id="cam-p", name="piling", source="x", location={"lat": 30.0, "lon": 104.0}, grid="G01",
                  zones=[{"id": "z-corner", "kind": "no_piling", "polygon": [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]]}])


def run(media_dir: Path, tmp_path: Path, detector: Scripted):
    noisy, street, piled = scene_frames(media_dir)
    settings = DetectorSettings(lost_after_s=10, update_interval_s=600, motion=MotionSettings(recheck_s=10))
    pipeline = Pipeline([camera()], [PILING], settings, detector, EvidenceStore(tmp_path / "evidence"),
                        report_missing=False)
    events = []
    for t in range(180):
        image = noisy(piled if 30 <= t < 140 else street)
        for event in pipeline.process([Frame("cam-p", image, EPOCH + t, t)]):
            events.append((t, event))
    return events


def test_new_static_pile_in_a_no_piling_zone_starts_and_ends(media_dir, tmp_path):
    events = run(media_dir, tmp_path, Scripted())
    assert [(e.kind, e.scenario, e.object_class, e.zone_id) for _, e in events] == [
        ("start", "material_piling", "static_object", "z-corner"), ("end", "material_piling", "static_object", "z-corner")]
    (start_t, start), (end_t, end) = events
    assert 30 + 60 <= start_t <= 30 + 60 + 25  # dwell after the region settled
    assert 140 <= end_t <= 140 + 15
    x1, y1, x2, y2 = start.bbox
    assert x1 == pytest.approx(PILE_BOX[0], abs=0.03) and y2 == pytest.approx(PILE_BOX[3], abs=0.03)
    assert verify([start], tmp_path / "evidence") == []


def test_static_region_explained_by_a_detected_object_is_not_a_pile(media_dir, tmp_path):
    parked = DetectedObject("car", 0.8, (PILE_BOX[0] - 0.01, PILE_BOX[1] - 0.01, PILE_BOX[2] + 0.01, PILE_BOX[3] + 0.01))
    assert run(media_dir, tmp_path, Scripted([parked])) == []
