"""The real model on real photos, as videos held still in simulated (video) time, then removed.

The dwell is shortened to 60 s by a config override (``model_copy``) to keep the runs short; the
videos are 1 frame per second and the motion gate skips most still frames.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from nonsite.evidence import EvidenceStore, verify
from detector.inference import Detector
from detector.pipeline import Pipeline, run_offline
from detector.samples import DOG_REGION, build_still_video
from detector.sources import iter_file_frames
from nonsite.config import City

pytestmark = [pytest.mark.model, pytest.mark.slow]

EPOCH = 1_800_000_000.0
DWELL_S = 60.0
# the kerb strip in front of the trees on the Beijing side road: holds the bottom-centre of one parked car
KERB = [[0.10, 0.42], [0.26, 0.42], [0.24, 0.55], [0.08, 0.55]]


@pytest.fixture(scope="module")
def detector(weights_path: Path) -> Detector:
    return Detector.load(weights_path, imgsz=640, batch=8, min_confidence=0.25)


def detect_video(city: City, detector: Detector, camera_id: str, video: Path, store: Path, zones=None):
    camera = city.camera(camera_id)
    if zones is not None:
        camera = camera.model_copy(update={"zones": [camera.zones[0].model_copy(update=z) for z in zones]})
    scenarios = [s.model_copy(update={"dwell_s": DWELL_S}) for s in city.scenarios]
    pipeline = Pipeline([camera], scenarios, city.detector, detector, EvidenceStore(store), report_missing=False)
    frames = iter_file_frames(video, camera.sample_interval_s, start_epoch=EPOCH, camera_id=camera_id)
    return list(run_offline(pipeline, frames)), pipeline


def test_dog_alone_held_longer_than_dwell_is_one_stray_dog_start_and_end(city, detector, media_dir, tmp_path):
    video = build_still_video(media_dir / "dog.jpg", tmp_path / "dog.mp4", hold_s=90, gone_s=30,
                              removed="paint", regions=[DOG_REGION])
    events, pipeline = detect_video(city, detector, "cam-01", video, tmp_path / "evidence")
    assert [(e.kind, e.scenario, e.object_class) for e in events] == [("start", "stray_dog", "dog"),
                                                                     ("end", "stray_dog", "dog")]
    start, end = events
    assert start.violation_id == end.violation_id
    assert start.dwell_s == pytest.approx(DWELL_S, abs=1.0)
    assert 85 <= end.dwell_s <= 90
    assert [e.kind for e in start.evidence] == ["annotated", "first_seen"]
    assert verify(events, tmp_path / "evidence") == []
    annotated = cv2.imread(str(tmp_path / "evidence" / start.evidence[0].uri))
    assert annotated is not None and annotated.shape[:2] == (576, 768)
    assert pipeline.stats.inferred < pipeline.stats.frames / 3  # the still video is mostly skipped


def test_dog_with_its_person_is_not_a_stray(city, detector, media_dir, tmp_path):
    video = build_still_video(media_dir / "person.jpg", tmp_path / "person.mp4", hold_s=120, gone_s=20)
    events, _ = detect_video(city, detector, "cam-01", video, tmp_path / "evidence")
    assert [e for e in events if e.scenario == "stray_dog"] == []


def kerb_zone():
    return [{"id": "z-kerb", "kind": "sidewalk", "polygon": [tuple(p) for p in KERB]}]


def test_car_on_the_sidewalk_longer_than_dwell_is_one_start(city, detector, media_dir, tmp_path):
    video = build_still_video(media_dir / "cctv_street_busstop_parked_cars_beijing_uadetrac_06.jpg",
                              tmp_path / "parked.mp4", hold_s=90, gone_s=20)
    events, _ = detect_video(city, detector, "cam-02", video, tmp_path / "evidence", zones=kerb_zone())
    parking = [(e.kind, e.zone_id, e.object_class) for e in events if e.scenario == "sidewalk_parking"]
    assert parking == [("start", "z-kerb", "car"), ("end", "z-kerb", "car")]
    assert verify(events, tmp_path / "evidence") == []


def test_car_on_the_sidewalk_shorter_than_dwell_is_nothing(city, detector, media_dir, tmp_path):
    video = build_still_video(media_dir / "cctv_street_busstop_parked_cars_beijing_uadetrac_06.jpg",
                              tmp_path / "short.mp4", hold_s=45, gone_s=20)
    events, _ = detect_video(city, detector, "cam-02", video, tmp_path / "evidence", zones=kerb_zone())
    assert [e for e in events if e.scenario == "sidewalk_parking"] == []


def test_one_blank_frame_does_not_start_a_second_violation(city, detector, media_dir, tmp_path):
    video = build_still_video(media_dir / "cctv_street_busstop_parked_cars_beijing_uadetrac_06.jpg",
                              tmp_path / "gap.mp4", hold_s=150, gone_s=20, gap_at_s=80)
    events, _ = detect_video(city, detector, "cam-02", video, tmp_path / "evidence", zones=kerb_zone())
    parking = [e for e in events if e.scenario == "sidewalk_parking"]
    assert [e.kind for e in parking] == ["start", "update", "end"]
    assert len({e.violation_id for e in parking}) == 1
    assert parking[0].dwell_s == pytest.approx(DWELL_S, abs=1.0)  # started before the gap, kept through it
