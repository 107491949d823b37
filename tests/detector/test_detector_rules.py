"""Rule timing, tracking gaps and motion gating on a simulated clock, with scripted detections (no model)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from contract import Detection
from detector.annotate import encode_jpeg
from detector.inference import DetectedObject, missing_classes
from detector.motion import MotionGate
from detector.pipeline import Pipeline
from detector.rules import CameraRules, Frame
from detector.sources import Frame as CameraFrame
from detector.tracking import CameraTracker
from detector.zones import ZoneArea
from nonsite.config import Camera, DetectorSettings, MotionSettings, Scenario
from nonsite.evidence import EvidenceStore, verify

EPOCH = 1_800_000_000.0
SIDEWALK = ZoneArea("z-walk", "sidewalk", ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)))
CAR_ON_WALK = DetectedObject("car", 0.8, (0.30, 0.55, 0.50, 0.80))
CAR_ON_ROAD = DetectedObject("car", 0.8, (0.30, 0.10, 0.50, 0.40))
DOG = DetectedObject("dog", 0.9, (0.40, 0.55, 0.50, 0.75))
PERSON_NEAR = DetectedObject("person", 0.9, (0.52, 0.40, 0.58, 0.75))
PERSON_FAR = DetectedObject("person", 0.9, (0.02, 0.05, 0.06, 0.20))
UMBRELLA = DetectedObject("umbrella", 0.7, (0.60, 0.55, 0.70, 0.70))


def scenario(**fields) -> Scenario:
    base = dict(label_zh="x", label_en="x")
    return Scenario(**{**base, **fields})


PARKING = scenario(id="sidewalk_parking", rule="dwell", classes=["car", "motorcycle"], zone_kinds=["sidewalk"],
                   dwell_s=120, confidence=0.35, max_displacement=0.05)
STRAY = scenario(id="stray_dog", rule="unaccompanied", classes=["dog"], companion_classes=["person"],
                 companion_distance=4, dwell_s=120)
VENDOR = scenario(id="mobile_vendor", rule="with_person", classes=["umbrella"], companion_classes=["person"],
                  companion_distance=3, zone_kinds=["sidewalk"], dwell_s=60)


def run(script, scenarios=(PARKING,), seconds=400, lost_after_s=10.0, update_interval_s=60.0, zones=(SIDEWALK,)):
    """Drive tracker + rules at 1 frame/s; ``script(t)`` gives the detections of second ``t``."""
    tracker = CameraTracker(lost_after_s=lost_after_s)
    rules = CameraRules("cam-t", list(zones), list(scenarios), lost_after_s, update_interval_s)
    events = []
    for t in range(seconds):
        now = EPOCH + t
        seen = tracker.update(script(t), now, (720, 1280), scene_changed=True)
        tracker.expire(now)
        for event in rules.step(Frame(now, seen, tracker.alive, (720, 1280))):
            events.append((t, event.kind, event.violation.scenario.id, event.violation.track.track_id,
                           event.violation.violation_id, event.dwell_s))
    return events


def kinds(events):
    return [e[1] for e in events]


def test_parked_car_longer_than_dwell_starts_once_updates_and_ends():
    events = run(lambda t: [CAR_ON_WALK] if t < 200 else [])
    assert kinds(events) == ["start", "update", "end"]
    start, update, end = events
    assert start[0] == 120 and start[5] == 120.0
    assert update[0] == 180 and update[5] == 180.0
    assert end[0] == 199 + 10 and end[5] == 199.0
    assert len({e[4] for e in events}) == 1  # one violation id across its lifecycle


def test_parked_car_shorter_than_dwell_yields_nothing():
    assert run(lambda t: [CAR_ON_WALK] if t < 110 else []) == []


def test_car_outside_the_zone_yields_nothing():
    assert run(lambda t: [CAR_ON_ROAD] if t < 300 else []) == []


def test_one_frame_detection_gap_keeps_one_violation():
    events = run(lambda t: [] if t in (60, 150) else [CAR_ON_WALK] if t < 250 else [])
    assert kinds(events) == ["start", "update", "update", "end"]
    assert len({e[3] for e in events}) == 1


def test_gap_longer_than_lost_after_starts_a_new_violation():
    events = run(lambda t: [CAR_ON_WALK] if t < 130 or 160 <= t < 300 else [])
    assert kinds(events) == ["start", "end", "start", "end"]
    assert events[0][4] != events[2][4]


def test_moving_car_never_counts_as_parked():
    def driving(t):
        x = (t % 100) / 200.0
        return [DetectedObject("car", 0.8, (x, 0.55, x + 0.2, 0.8))]

    assert run(driving) == []


def test_updates_are_spaced_by_the_update_interval():
    events = run(lambda t: [CAR_ON_WALK] if t < 390 else [], seconds=420, update_interval_s=60)
    update_times = [e[0] for e in events if e[1] == "update"]
    assert update_times == [180, 240, 300, 360]


def test_low_confidence_object_is_ignored():
    weak = DetectedObject("car", 0.3, CAR_ON_WALK.xyxy)
    assert run(lambda t: [weak] if t < 300 else []) == []


def test_stray_dog_alone_fires_accompanied_does_not():
    alone = run(lambda t: [DOG] if t < 200 else [], scenarios=(STRAY,), zones=())
    assert kinds(alone) == ["start", "update", "end"]
    with_person = run(lambda t: [DOG, PERSON_NEAR] if t < 200 else [], scenarios=(STRAY,), zones=())
    assert with_person == []
    person_far = run(lambda t: [DOG, PERSON_FAR] if t < 200 else [], scenarios=(STRAY,), zones=())
    assert kinds(person_far) == ["start", "update", "end"]


def test_person_missed_for_one_frame_does_not_make_the_dog_stray():
    events = run(lambda t: ([DOG] if t % 30 == 0 else [DOG, PERSON_NEAR]) if t < 300 else [],
                 scenarios=(STRAY,), zones=())
    assert events == []


def test_vendor_prop_needs_a_person_near():
    assert kinds(run(lambda t: [UMBRELLA, PERSON_NEAR] if t < 100 else [], scenarios=(VENDOR,))) == ["start", "end"]
    assert run(lambda t: [UMBRELLA] if t < 100 else [], scenarios=(VENDOR,)) == []


def test_active_lists_started_violations_until_they_end():
    tracker = CameraTracker(lost_after_s=10)
    rules = CameraRules("cam-t", [SIDEWALK], [PARKING], 10, 60)
    actives = {}
    for t in range(260):
        now = EPOCH + t
        seen = tracker.update([CAR_ON_WALK] if t < 200 else [], now, (720, 1280))
        tracker.expire(now)
        rules.step(Frame(now, seen, tracker.alive, (720, 1280)))
        actives[t] = rules.active()
    assert actives[100] == [] and actives[150] == ["sidewalk_parking/z-walk"] and actives[250] == []


def test_scenarios_the_model_cannot_see_are_reported_once_each():
    coco_like = {"person", "car", "dog", "umbrella"}
    drying = scenario(id="street_drying", classes=["laundry"], zone_kinds=[])
    piling = scenario(id="material_piling", rule="static_foreground", classes=["pile", "static_object"])
    lines = [line for _, line in missing_classes([PARKING, drying, piling], coco_like)]
    assert len(lines) == 2
    assert lines[0].startswith("street_drying: model has none of its classes [laundry]")
    assert "static-foreground" in lines[1]


# ---------------------------------------------------------------- motion gate
def test_motion_gate_skips_still_frames_and_rechecks():
    gate = MotionGate(MotionSettings(recheck_s=10))
    still = np.full((360, 640, 3), 100, np.uint8)
    moved = still.copy()
    moved[100:200, 200:300] = 250
    decisions = [gate.decide("c", still, t).reason for t in range(0, 12)]
    assert decisions == ["first"] + ["still"] * 9 + ["recheck", "still"]
    assert gate.decide("c", moved, 12).reason == "motion"
    assert gate.decide("c", moved, 13).reason == "still"


def test_motion_gate_ignores_sensor_noise():
    rng = np.random.default_rng(1)
    gate = MotionGate(MotionSettings(recheck_s=100))
    base = rng.integers(60, 200, (540, 960, 3), dtype=np.uint8)
    gate.decide("c", base, 0)
    noisy = np.clip(base.astype(int) + rng.integers(-8, 9, base.shape), 0, 255).astype(np.uint8)
    assert gate.decide("c", noisy, 1).reason == "still"


# ---------------------------------------------------------------- pipeline on scripted detections
class ScriptedDetector:
    """Returns the detections the test put in each frame (keyed by the image's identity)."""

    max_batch = 4

    def __init__(self):
        self.script: dict[int, list[DetectedObject]] = {}
        self.calls: list[int] = []

    @property
    def class_names(self) -> set[str]:
        return {"person", "car", "dog"}

    def detect(self, images):
        self.calls.append(len(images))
        return [self.script[id(image)] for image in images]


def make_pipeline(tmp_path: Path, detector: ScriptedDetector, cameras: list[Camera]) -> Pipeline:
    settings = DetectorSettings(lost_after_s=10, update_interval_s=60, motion=MotionSettings(recheck_s=10))
    return Pipeline(cameras, [PARKING, STRAY], settings, detector, EvidenceStore(tmp_path / "evidence"))


def camera(camera_id: str) -> Camera:
    return Camera(id=camera_id, name=camera_id, source="x.mp4", location={"lat": 30.0, "lon": 104.0}, grid="G01",
                  zones=[{"id": "z-walk", "kind": "sidewalk", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}])


def test_pipeline_batches_cameras_gates_still_frames_and_emits_one_lifecycle(tmp_path: Path):
    detector = ScriptedDetector()
    pipeline = make_pipeline(tmp_path, detector, [camera("cam-a"), camera("cam-b")])
    scene = np.full((360, 640, 3), 90, np.uint8)
    scene[200:290, 190:320] = 200  # the car
    empty = np.full((360, 640, 3), 90, np.uint8)
    events: list[Detection] = []
    for t in range(260):
        frames = []
        for camera_id in ("cam-a", "cam-b"):
            image = (scene if t < 200 else empty).copy()
            detector.script[id(image)] = [CAR_ON_WALK] if t < 200 and camera_id == "cam-a" else []
            frames.append(CameraFrame(camera_id, image, EPOCH + t, t))
        events.extend(pipeline.process(frames))
    assert [(e.camera_id, e.kind) for e in events] == [("cam-a", "start"), ("cam-a", "update"), ("cam-a", "end")]
    assert pipeline.stats.frames == 520
    assert pipeline.stats.inferred < 0.2 * pipeline.stats.frames  # still frames skipped, rechecked every 10 s
    assert max(detector.calls) == 2  # both cameras in one model call
    start = events[0]
    assert [e.kind for e in start.evidence] == ["annotated", "first_seen"]
    assert verify(events, tmp_path / "evidence") == []
    assert Detection.from_json(start.to_json()) == start


def test_missed_detection_on_a_recheck_does_not_end_a_parked_car(tmp_path: Path):
    detector = ScriptedDetector()
    pipeline = make_pipeline(tmp_path, detector, [camera("cam-a")])
    scene = np.full((360, 640, 3), 90, np.uint8)
    events = []
    for t in range(300):
        image = scene.copy()
        # the model misses the car at every second inference (a flickering detection)
        detector.script[id(image)] = [CAR_ON_WALK] if len(detector.calls) % 2 == 0 else []
        events.extend(pipeline.process([CameraFrame("cam-a", image, EPOCH + t, t)]))
    assert [e.kind for e in events] == ["start", "update", "update"]  # at 120, 180, 240 s; no end


def test_evidence_verify_reports_altered_and_missing_files(tmp_path: Path):
    store = EvidenceStore(tmp_path)
    image = np.zeros((40, 60, 3), np.uint8)
    good = store.put(encode_jpeg(image), "annotated")
    assert good.sha256 == hashlib.sha256((tmp_path / good.uri).read_bytes()).hexdigest()
    other = store.put(b"not really a jpeg", "first_seen")
    event = Detection(event_id="e1", kind="start", violation_id="cam/1/x/1", camera_id="cam", scenario="x",
                      zone_id="", object_class="dog", track_id=1, confidence=0.9, bbox=[0, 0, 1, 1],
                      first_seen="2026-01-01T00:00:00.000Z", observed_at="2026-01-01T00:02:00.000Z",
                      dwell_s=120.0, evidence=[good, other])
    assert verify([event], tmp_path) == []
    (tmp_path / good.uri).write_bytes(b"tampered")
    (tmp_path / other.uri).unlink()
    problems = verify([event], tmp_path)
    assert len(problems) == 2
    assert "annotated" in problems[0] and "event says" in problems[0]
    assert "missing file" in problems[1]


# ---------------------------------------------------------------- inference plumbing without a model
class Numbered:
    """Detector stand-in: reports each image's first pixel value as the confidence, one frame per call."""

    max_batch = 1
    names = {0: "dog"}

    def __init__(self):
        self.calls = 0

    def detect(self, images):
        self.calls += 1
        assert len(images) <= 1 or self.max_batch > 1
        return [[DetectedObject("dog", float(image[0, 0, 0]) / 100, (0.1, 0.1, 0.2, 0.2))] for image in images]


def test_detector_pool_splits_frames_and_keeps_their_order():
    from detector.inference import DetectorPool

    workers = [Numbered(), Numbered()]
    workers[0].max_batch = workers[1].max_batch = 2
    pool = DetectorPool(workers)
    images = [np.full((4, 4, 3), value, np.uint8) for value in (10, 20, 30, 40)]
    assert pool.max_batch == 4
    found = pool.detect(images)
    assert [f[0].confidence for f in found] == [0.1, 0.2, 0.3, 0.4]
    assert workers[0].calls == 1 and workers[1].calls == 1
    pool.close()


def test_manifest_pins_the_shared_model_and_flags_other_files(tmp_path):
    from detector.inference import check_manifest

    impostor = tmp_path / "yolov8n_int8.tflite"
    impostor.write_bytes(b"not the model")
    warning = check_manifest(impostor)
    assert warning is not None and "differs from models/manifest.yaml" in warning
    assert check_manifest(tmp_path / "unknown.pt") is None
