"""Evidence off the pipeline thread (issue 11, item 4): the pictures of a start are stored on the evidence stage's
thread while the pipeline goes on with every camera's frames; records leave in the order they came, and a stop
drains the stage or finishes what is left with the originals alone: no event is dropped.

Renders block on an Event instead of taking time: nothing here is timed (the joins' timeouts only end a failure)."""
from __future__ import annotations

import threading
from pathlib import Path

import msgspec
import numpy as np

from contract import Detection
from detector.evidence_stage import EvidenceStage, EvidenceWriter, Pending, Picture
from detector.inference import DetectedObject
from detector.live import detect_loop, shutdown
from detector.pipeline import Pipeline
from detector.sources import Frame
from nonsite.config import Camera, DetectorSettings, MaskingSettings, MotionSettings, PlateSettings, Scenario
from nonsite.evidence import EvidenceStore, verify

EPOCH = 1_800_000_000.0
FAILED = 30.0  # seconds after which a wait means the test failed
CAR_ON_WALK = DetectedObject("car", 0.8, (0.30, 0.55, 0.50, 0.80))
PARKING = Scenario(id="sidewalk_parking", label_zh="x", label_en="x", rule="dwell", classes=["car"],
                   zone_kinds=["sidewalk"], dwell_s=5, confidence=0.35, max_displacement=0.05)
PICTURE = Picture(np.full((36, 64, 3), 120, np.uint8), "annotated")


def detection(camera_id: str, kind: str, number: int = 1) -> Detection:
    return Detection(event_id=f"{camera_id}-{kind}-{number}", kind=kind, violation_id=f"{camera_id}/{number}",
                     camera_id=camera_id, scenario="sidewalk_parking", zone_id="z-walk", object_class="car",
                     track_id=number, confidence=0.9, bbox=[0.1, 0.1, 0.2, 0.2], first_seen="2026-01-01T00:00:00.000Z",
                     observed_at="2026-01-01T00:01:00.000Z", dwell_s=60.0)


class GatedFinish:
    """Stores pictures with a real writer; the renders of ``blocked`` cameras wait for ``release`` first."""

    def __init__(self, finish, blocked: set[str]) -> None:
        self.inner, self.blocked = finish, blocked
        self.rendering, self.release = threading.Event(), threading.Event()
        self.calls: list[tuple[str, bool]] = []  # (event id, with masked copies)

    def __call__(self, pending: Pending, masked: bool = True) -> Detection:
        self.calls.append((pending.detection.event_id, masked))
        if masked and pending.pictures and pending.detection.camera_id in self.blocked:
            self.rendering.set()
            assert self.release.wait(FAILED)
        return self.inner(pending, masked)


def order(published) -> list[tuple[str, str]]:
    return [(record.camera_id, record.kind) for record in published]


def test_each_cameras_records_stay_in_order_while_another_cameras_evidence_is_rendered(tmp_path: Path):
    finish = GatedFinish(EvidenceWriter(EvidenceStore(tmp_path)).finish, blocked={"cam-a"})
    published: list[Detection] = []
    stage = EvidenceStage(finish, published.append).start()
    stage.publish(Pending(detection("cam-a", "start"), (PICTURE,)))
    assert finish.rendering.wait(FAILED)
    stage.publish(Pending(detection("cam-b", "start"), (PICTURE,)))
    stage.publish(Pending(detection("cam-b", "update")))
    stage.publish(Pending(detection("cam-a", "update")))
    stage.publish(detection("cam-b", "end"))  # a ready record takes the same queue
    assert published == [] and stage.depth == 5  # the render in flight holds back what came after it
    finish.release.set()
    assert stage.drain(FAILED)
    assert order(published) == [("cam-a", "start"), ("cam-b", "start"), ("cam-b", "update"), ("cam-a", "update"),
                                ("cam-b", "end")]
    assert [len(record.evidence) for record in published] == [1, 1, 0, 0, 0]
    assert verify(published, tmp_path) == []
    assert stage.close(drain_s=FAILED) == 0


# ---------------------------------------------------------------- the live loop: the pipeline does not wait
class ScriptedDetector:
    """The detections each frame holds, keyed by the image's identity (no model)."""

    max_batch = 4

    def __init__(self) -> None:
        self.script: dict[int, list[DetectedObject]] = {}

    @property
    def class_names(self) -> set[str]:
        return {"car"}

    def detect(self, images):
        return [self.script[id(image)] for image in images]


class ScriptedReader:
    """Hands over its frames one a call, then says it ended."""

    def __init__(self, frames: list[Frame]) -> None:
        self.frames = list(reversed(frames))
        self.ended = False

    def latest(self):
        if not self.frames:
            self.ended = True
            return None
        return self.frames.pop()


class ScriptedCameras:
    def __init__(self, readers: dict[str, ScriptedReader]) -> None:
        self.readers = readers

    def take_transitions(self):
        return []

    def stop(self, timeout_s: float = 0) -> None:
        pass


def camera(camera_id: str) -> Camera:
    return Camera(id=camera_id, name=camera_id, source="x.mp4", location={"lat": 30.0, "lon": 104.0}, grid="G01",
                  zones=[{"id": "z-walk", "kind": "sidewalk", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}])


def scripted_frames(detector: ScriptedDetector, camera_id: str, seconds: int, car_from: int) -> list[Frame]:
    frames = []
    for t in range(seconds):
        image = np.full((180, 320, 3), 90, np.uint8)
        detector.script[id(image)] = [CAR_ON_WALK] if t >= car_from else []
        frames.append(Frame(camera_id, image, EPOCH + t, t))
    return frames


def test_a_second_cameras_frames_are_analysed_while_a_starts_evidence_is_being_rendered(tmp_path: Path):
    settings = DetectorSettings(lost_after_s=10, update_interval_s=60, motion=MotionSettings(enabled=False),
                                plates=PlateSettings(enabled=False), masking=MaskingSettings(enabled=False))
    detector = ScriptedDetector()
    pipeline = Pipeline([camera("cam-a"), camera("cam-b")], [PARKING], settings, detector,
                        EvidenceStore(tmp_path / "evidence"))
    # cam-a's car starts a violation at 5 s; cam-b's car comes at 20 s and starts its own at 25 s
    cameras = ScriptedCameras({"cam-a": ScriptedReader(scripted_frames(detector, "cam-a", 40, car_from=0)),
                               "cam-b": ScriptedReader(scripted_frames(detector, "cam-b", 40, car_from=20))})
    finish = GatedFinish(pipeline.finish, blocked={"cam-a"})
    published: list[Detection] = []
    stop = threading.Event()
    stage = EvidenceStage(finish, published.append, stop=stop).start()
    loop = threading.Thread(target=detect_loop, args=(pipeline, cameras, stage, stop, True), daemon=True)
    loop.start()
    assert finish.rendering.wait(FAILED)
    loop.join(FAILED)  # every frame of both cameras analysed, cam-a's start still being rendered
    assert not loop.is_alive() and not finish.release.is_set()
    assert pipeline.cameras["cam-b"].frames == 40 and pipeline.cameras["cam-a"].frames == 40
    assert published == []
    finish.release.set()
    assert stage.drain(FAILED)
    assert order(published) == [("cam-a", "start"), ("cam-b", "start")]
    assert [[e.kind for e in record.evidence] for record in published] == [["annotated", "first_seen"]] * 2
    assert verify(published, tmp_path / "evidence") == []
    assert [masked for _, masked in finish.calls] == [True, True]


# ---------------------------------------------------------------- stopping
class StoppedPublisher:
    kafka_up = True

    def __init__(self) -> None:
        self.published: list[Detection] = []
        self.closed = False

    def publish(self, record) -> None:
        assert not self.closed, "published after the publisher's close"
        self.published.append(record)

    def close(self, timeout: float) -> None:
        self.closed = True


def test_a_stop_drains_the_evidence_stage_before_the_publisher_closes(tmp_path: Path):
    finish = GatedFinish(EvidenceWriter(EvidenceStore(tmp_path)).finish, blocked=set())
    publisher = StoppedPublisher()
    stage = EvidenceStage(finish, publisher.publish)
    queued = [Pending(detection(f"cam-{n % 3}", "start", n), (PICTURE,)) for n in range(6)]
    for pending in queued:  # queued before the worker runs: the stop finds all of them waiting
        stage.publish(pending)
    stage.start()
    shutdown(ScriptedCameras({}), publisher, evidence=stage)
    assert [record.event_id for record in publisher.published] == [p.detection.event_id for p in queued]
    assert finish.calls == [(p.detection.event_id, True) for p in queued]  # each with its masked copies
    assert verify(publisher.published, tmp_path) == [] and publisher.closed


def test_what_the_stop_cannot_render_in_time_goes_out_with_the_originals_in_order(tmp_path: Path):
    finish = GatedFinish(EvidenceWriter(EvidenceStore(tmp_path)).finish, blocked={"cam-a"})
    published: list[Detection] = []
    stop = threading.Event()
    stage = EvidenceStage(finish, published.append, capacity=1, stop=stop).start()
    stage.publish(Pending(detection("cam-a", "start"), (PICTURE,)))
    assert finish.rendering.wait(FAILED)
    stage.publish(Pending(detection("cam-b", "start"), (PICTURE,)))
    stop.set()  # the queue is full (capacity 1): a stop no longer waits for room
    stage.publish(Pending(detection("cam-a", "start", 2), (PICTURE,)))
    stage.publish(Pending(detection("cam-b", "update")))
    assert stage.close(drain_s=0) == 4
    assert order(published) == [("cam-a", "start"), ("cam-b", "start"), ("cam-a", "start"), ("cam-b", "update")]
    assert [len(record.evidence) for record in published] == [1, 1, 1, 0]
    assert all(e.masked == {} for record in published for e in record.evidence)  # no copy: shown to no one
    assert verify(published, tmp_path) == []
    finish.release.set()  # the render that was in flight ends: its record is not sent twice
    stage.thread.join(FAILED)
    assert not stage.thread.is_alive() and len(published) == 4


def test_a_failed_render_still_publishes_the_event_with_its_originals(tmp_path: Path):
    writer = EvidenceWriter(EvidenceStore(tmp_path))

    def failing(pending: Pending, masked: bool = True) -> Detection:
        if masked:
            raise OSError("no space left on device")
        return writer.finish(pending, masked)

    published: list[Detection] = []
    stage = EvidenceStage(failing, published.append).start()
    stage.publish(Pending(detection("cam-a", "start"), (PICTURE,)))
    stage.publish(Pending(detection("cam-a", "update")))
    assert stage.drain(FAILED)
    assert order(published) == [("cam-a", "start"), ("cam-a", "update")]
    assert len(published[0].evidence) == 1 and published[0].evidence[0].masked == {}
    assert msgspec.structs.replace(published[0], evidence=[]) == detection("cam-a", "start")
    stage.close(drain_s=0)
