"""Props together are one violation (``with_person``): a cafe terrace's umbrellas, tables and chairs make one
start, not one per prop; props far apart stay separate violations.

* scripted: two umbrellas side by side, and a third far off, each with a person near;
* real: the Starbucks terrace of ``vendors/C01`` through the real model and the second look. The model boxes the
  left umbrella twice (the canopy alone, and canopy with table, IoU 0.41) and the second look agrees on both
  (patio): two ``road_occupation`` starts for one terrace before this rule, one after.
"""
from __future__ import annotations

import cv2
import pytest

from detector.inference import DetectedObject
from detector.pipeline import Pipeline, run_offline
from detector.rules import CameraRules, Frame, touching
from detector.sources import Frame as CameraFrame
from detector.tracking import CameraTracker
from detector.zones import ZoneArea
from nonsite.config import Camera, Scenario

EPOCH = 1_800_000_000.0
FRONT = ZoneArea("z-front", "storefront", ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)))
TERRACE = Scenario(id="road_occupation", label_zh="x", label_en="x", rule="with_person",
                   classes=["umbrella", "chair"], companion_classes=["person"], companion_distance=3,
                   zone_kinds=["storefront"], dwell_s=60)
LEFT = DetectedObject("umbrella", 0.7, (0.20, 0.55, 0.30, 0.70))
RIGHT = DetectedObject("umbrella", 0.7, (0.31, 0.55, 0.41, 0.70))
FAR = DetectedObject("umbrella", 0.7, (0.85, 0.55, 0.95, 0.70))
PEOPLE = [DetectedObject("person", 0.9, (0.30, 0.50, 0.33, 0.75)),
          DetectedObject("person", 0.9, (0.80, 0.50, 0.83, 0.75))]


def run(script, seconds=300):
    tracker = CameraTracker(lost_after_s=10)
    rules = CameraRules("cam-t", [FRONT], [TERRACE], 10, 600)
    events = []
    for t in range(seconds):
        now = EPOCH + t
        seen = tracker.update(script(t), now, (720, 1280), scene_changed=True)
        tracker.expire(now)
        events += [(t, e.kind, e.violation.violation_id) for e in rules.step(Frame(now, seen, tracker.alive,
                                                                                          (720, 1280)))]
    return events


def test_touching_grows_each_box_by_half_its_size():
    assert touching(LEFT.xyxy, RIGHT.xyxy) and not touching(LEFT.xyxy, FAR.xyxy)
    assert not touching((0.0, 0.0, 0.1, 0.1), (0.21, 0.0, 0.3, 0.1))  # 0.11 apart: grown by 0.05 and 0.045


def test_props_side_by_side_are_one_violation_far_ones_two():
    side_by_side = run(lambda t: [LEFT, RIGHT, *PEOPLE] if t < 200 else [])
    assert [e[1] for e in side_by_side] == ["start", "end"]
    assert side_by_side[1][0] == 199 + 10  # the end waits for the last prop of it to go
    with_far = run(lambda t: [LEFT, RIGHT, FAR, *PEOPLE] if t < 200 else [])
    assert sorted(e[1] for e in with_far) == ["end", "end", "start", "start"]


def test_the_violation_stays_while_one_of_its_props_does():
    # the prop that started it goes at 100 s; its neighbour stays until 200 s: no end before 210 s
    events = run(lambda t: ([LEFT] if t < 100 else []) + ([RIGHT] if t < 200 else []) + PEOPLE)
    assert [(e[0], e[1]) for e in events] == [(60, "start"), (209, "end")]


@pytest.mark.model
def test_a_cafe_terrace_is_one_road_occupation(city, weights_path, media_dir):
    from detector.inference import Detector

    photo = cv2.imread(str(media_dir / "vendors/C01_cafe_tables_umbrellas_on_sidewalk.jpg"))
    camera = Camera(id="cam-cafe", name="cafe", source="x", location={"lat": 0, "lon": 0}, grid="G01",
                    zones=[{"id": "z-front", "kind": "storefront",
                            "polygon": [[0.12, 0.72], [0.8, 0.72], [0.8, 1.0], [0.12, 1.0]]}])
    shop = next(s for s in city.scenarios if s.id == "road_occupation").model_copy(update={"dwell_s": 10})
    settings = city.detector.model_copy(update={"weights": str(weights_path)})
    pipeline = Pipeline([camera], [shop], settings, Detector.load(weights_path), None, report_missing=False)
    assert pipeline.classifiers.second_look is not None
    frames = [CameraFrame("cam-cafe", photo, EPOCH + t, t) for t in range(60)]
    starts = [e for e in run_offline(pipeline, frames) if e.kind == "start"]
    assert [(e.scenario, e.zone_id) for e in starts] == [("road_occupation", "z-front")]
    rules = pipeline.cameras["cam-cafe"].rules
    parts = [v for v in rules.pending() if v.part_of is not None]
    assert parts and all(v.part_of is rules.open_violations()[0] for v in parts)  # the other umbrella box joined it
