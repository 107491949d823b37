"""The detector's stage chain: frame -> privacy zones -> motion gate -> batched inference -> tracking -> zone
states -> rules (with the second look) -> plates -> evidence (with its masked copies) -> events.

One :class:`Pipeline` serves every camera of a process.  :meth:`Pipeline.process` takes a batch of
frames (any cameras, each with its own timestamp), runs the model once on the frames that need it,
and returns the violation events (:class:`contract.Detection`) due at those frame times.  It
only depends on frames with timestamps, so the same code runs live cameras (readers) and offline
files (:func:`run_offline`), and tests drive it on a simulated clock.  :meth:`Pipeline.analyse` is the same
chain without the evidence pictures: it returns them to store (:class:`~detector.evidence_stage.Pending`), which
the live loop leaves to the evidence stage's thread (:mod:`detector.evidence_stage`), and :meth:`Pipeline.process`
stores inline.

Example::

    >>> pipeline = Pipeline(city.cameras, city.scenarios, city.detector, Detector.load(weights),
    ...                     EvidenceStore(Path("var/evidence")))                       # doctest: +SKIP
    >>> for event in run_offline(pipeline, iter_file_frames("cam-01.mp4", 1.0, camera_id="cam-01")):
    ...     print(event.kind, event.scenario)                                           # doctest: +SKIP
    start stray_dog
    end stray_dog
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional, Protocol, Sequence

import numpy as np
import structlog

from contract import CameraStatus, Classification, Detection, new_id, to_iso
from detector import metrics
from detector.annotate import Drawn, annotate, caption
from detector.background import StaticForeground
from detector.classify.loading import Classifiers, load_classifiers
from detector.classify.scenes import SceneWatcher
from detector.evidence_stage import EvidenceWriter, Pending, Picture
from detector.inference import DetectedObject, Timer, report_missing_classes
from detector.masking import EvidenceMasker
from detector.motion import GateDecision, MotionGate, thumbnail
from detector.plates.reader import PlateReader
from detector.plates.stage import PlateStage
from detector.privacy_zones import PrivacyBlackout, polygons_of
from detector.rules import ANYWHERE, CameraRules, ViolationEvent
from detector.rules import Frame as RuleFrame
from detector.tracking import CameraTracker, Track
from detector.zones import ZoneArea, covered_fraction, zones_of
from nonsite.config import Camera, DetectorSettings, Scenario
from nonsite.evidence import EvidenceStore

log = structlog.get_logger("detector.pipeline")

COVERED = 0.5  # a static region this much inside a detected object's box is that object, not a pile


class FrameLike(Protocol):
    camera_id: str
    image: np.ndarray
    timestamp: float
    index: int


class ObjectDetector(Protocol):
    """What the pipeline needs from a model (:class:`detector.inference.Detector` or a test script)."""

    max_batch: int

    @property
    def class_names(self) -> set[str]: ...

    def detect(self, images: Sequence[np.ndarray]) -> list[list[DetectedObject]]: ...


@dataclass
class CameraState:
    camera: Camera
    zones: list[ZoneArea]
    tracker: CameraTracker
    rules: CameraRules
    blackout: PrivacyBlackout
    background: Optional[StaticForeground] = None
    static_tracker: Optional[CameraTracker] = None
    scenes: Optional[SceneWatcher] = None  # zone-state classifiers (detector.classify.scenes)
    seen: list[Track] = field(default_factory=list)
    last_frame_at: Optional[float] = None
    last_inference_at: Optional[float] = None
    last_status_at: Optional[float] = None
    frames: int = 0
    inferred: int = 0


@dataclass
class PipelineStats:
    frames: int = 0
    inferred: int = 0
    skipped: int = 0
    model_calls: int = 0
    events: int = 0


class Pipeline:
    """All cameras' stages; not thread-safe (one caller drives it)."""

    def __init__(self, cameras: Iterable[Camera], scenarios: Sequence[Scenario], settings: DetectorSettings,
                 detector: ObjectDetector, evidence: Optional[EvidenceStore] = None,
                 report_missing: bool = True, plate_reader: Optional[PlateReader] = None,
                 classifiers: Optional[Classifiers] = None):
        """``plate_reader`` replaces the default :class:`PlateReader` of the plate stage, which runs
        when ``settings.plates.enabled`` and some camera watches a vehicle scenario.  Evidence pictures get
        their masked copies (:mod:`detector.masking`) when ``settings.masking.enabled``.  ``classifiers``
        replaces the second look and zone-state classifiers loaded from ``settings`` (``Classifiers()``: none)."""
        self.settings = settings
        self.scenarios = list(scenarios)
        self.classifiers = classifiers if classifiers is not None else load_classifiers(settings, scenarios)
        self.detector = detector
        self.evidence = evidence
        self.gate = MotionGate(settings.motion)
        self.stats = PipelineStats()
        model_classes = detector.class_names
        self.cameras: dict[str, CameraState] = {}
        for camera in cameras:
            self.cameras[camera.id] = self._camera_state(camera, scenarios, model_classes)
        watched = {s.id: s for state in self.cameras.values() for s in state.rules.scenarios}
        self.plates: Optional[PlateStage] = None
        if settings.plates.enabled:
            stage = PlateStage(settings.plates, plate_reader)
            if any(stage.applies_to(s) for s in watched.values()):
                self.plates = stage
        self.masker: Optional[EvidenceMasker] = None
        if evidence is not None and settings.masking.enabled:
            reader = self.plates.reader if self.plates is not None else plate_reader
            self.masker = EvidenceMasker(settings.masking, evidence, reader)
        self.writer = EvidenceWriter(evidence, self.masker) if evidence is not None else None
        self.missing_class_lines = report_missing_classes([watched[k] for k in sorted(watched)], model_classes) \
            if report_missing else []

    def _camera_state(self, camera: Camera, scenarios: Sequence[Scenario], model_classes: set[str]) -> CameraState:
        settings = self.settings
        ids = itertools.count(1)
        zones = zones_of(camera)
        rules = CameraRules(camera.id, zones, list(scenarios), settings.lost_after_s, settings.update_interval_s,
                            settings.objects)
        tracker = CameraTracker(settings.lost_after_s, settings.tracker, ids=ids, objects=settings.objects)
        state = CameraState(camera, zones, tracker, rules, PrivacyBlackout(polygons_of(camera)))
        rules.second_look = self.classifiers.second_look is not None
        state.scenes = self.classifiers.watcher(camera.id, zones, rules.scenarios)
        rules.scene_owned = state.scenes.owned() if state.scenes is not None else frozenset()
        if any(s.rule == "static_foreground" and not set(s.classes) & model_classes for s in rules.scenarios):
            state.background = StaticForeground(width=settings.motion.downscale_width)
            state.static_tracker = CameraTracker(settings.lost_after_s, settings.tracker, ids=ids)
        return state

    def set_cameras(self, cameras: Iterable[Camera]) -> None:
        """Run these cameras from now on (detector scale-out: :mod:`detector.sharing`). A camera whose config is
        unchanged keeps its state (tracks, open violations); a new or changed one starts afresh."""
        wanted = {c.id: c for c in cameras}
        for camera_id in [k for k, state in self.cameras.items() if wanted.get(k) != state.camera]:
            del self.cameras[camera_id]
        for camera_id, camera in wanted.items():
            if camera_id not in self.cameras:
                self.cameras[camera_id] = self._camera_state(camera, self.scenarios, self.detector.class_names)

    # ------------------------------------------------------------------ the chain
    def process(self, frames: Sequence[FrameLike]) -> list[Detection]:
        """Run one batch of frames (any cameras, in time order per camera); returns the events due, with their
        evidence stored."""
        return [self.finish(pending) for pending in self.analyse(frames)]

    def analyse(self, frames: Sequence[FrameLike]) -> list[Pending]:
        """:meth:`process` less storing the evidence: the events due, each with the pictures still to store
        (:meth:`finish`, on any thread: it touches no camera's state)."""
        frames = [f for f in frames if f.camera_id in self.cameras]
        for frame in frames:  # before anything looks at the frame or keeps it
            self.cameras[frame.camera_id].blackout.apply(frame.image)
        gated = {id(f): self._gate(f) for f in frames}
        detections = self._infer([f for f in frames if gated[id(f)][0].infer])
        events: list[Pending] = []
        for frame in frames:
            state = self.cameras[frame.camera_id]
            decision, small = gated[id(frame)]
            found = detections.get(id(frame))
            changed = decision.reason in ("first", "motion", "disabled")
            events.extend(self._after_inference(state, frame, found, changed, small))
        self.stats.events += len(events)
        return events

    def _gate(self, frame: FrameLike) -> tuple[GateDecision, Optional[np.ndarray]]:
        """The motion gate's decision, and the frame's thumbnail (shared with the background model)."""
        state = self.cameras[frame.camera_id]
        small = None
        if self.settings.motion.enabled or state.background is not None:
            small = thumbnail(frame.image, self.settings.motion.downscale_width)
        if state.tracker.needs_inference(frame.timestamp):
            self.gate.force_next(frame.camera_id)
        return self.gate.decide(frame.camera_id, frame.image, frame.timestamp, small), small

    def _infer(self, frames: list[FrameLike]) -> dict[int, list[DetectedObject]]:
        found: dict[int, list[DetectedObject]] = {}
        batch = max(1, self.detector.max_batch)
        for start in range(0, len(frames), batch):
            chunk = frames[start:start + batch]
            with Timer() as timer:
                results = self.detector.detect([f.image for f in chunk])
            self.stats.model_calls += 1
            metrics.INFERENCE_SECONDS.observe(timer.elapsed)
            metrics.BATCH_SIZE.observe(len(chunk))
            for frame, objects in zip(chunk, results):
                found[id(frame)] = objects
                for obj in objects:
                    metrics.DETECTIONS.labels(object_class=obj.class_name).inc()
        return found

    def _after_inference(self, state: CameraState, frame: FrameLike, found: Optional[list[DetectedObject]],
                         scene_changed: bool, small: Optional[np.ndarray]) -> list[Pending]:
        camera_id, now = frame.camera_id, frame.timestamp
        shape = frame.image.shape[:2]
        state.frames += 1
        state.last_frame_at = now
        self.stats.frames += 1
        if found is None:
            seen = state.tracker.carry(now)
            self.stats.skipped += 1
            metrics.FRAMES_SKIPPED_MOTION.labels(camera=camera_id).inc()
        else:
            seen = state.tracker.update(found, now, shape, frame.image, state.rules.watched_classes, scene_changed)
            state.inferred += 1
            state.last_inference_at = now
            self.stats.inferred += 1
            metrics.FRAMES_INFERRED.labels(camera=camera_id).inc()
        state.tracker.expire(now)
        seen = seen + self._static_objects(state, frame, small, learn=found is not None)
        state.seen = seen
        alive = state.tracker.alive + (state.static_tracker.alive if state.static_tracker else [])
        # a frame the gate skipped is the picture of the last sample: the zones' samples repeat theirs
        sightings = state.scenes.step(frame.image, now, scene_changed and found is not None) if state.scenes else []
        events = state.rules.step(RuleFrame(now, seen, alive, shape, sightings), self.classifiers.look(frame.image))
        if self.plates is None:
            return [self._record(state, frame, event) for event in events]
        if found is not None:  # a frame the gate skipped shows what was already read
            self.plates.step(camera_id, frame.image, now, state.rules.holding(now))
        records = [self._record(state, frame, event) for event in events]
        keep = {t.track_id for t in state.tracker.alive} | {v.track.track_id for v in state.rules.pending()}
        self.plates.forget(camera_id, keep, [e.violation.violation_id for e in events if e.kind == "end"])
        return records

    def _static_objects(self, state: CameraState, frame: FrameLike, small: Optional[np.ndarray],
                        learn: bool) -> list[Track]:
        """New static regions (background model) not explained by a detected object, as tracks.

        The model learns from frames that may have changed (the inferred ones); on frames the gate
        skipped only the time moves, so the cached regions are re-timed instead.
        """
        background, tracker, now = state.background, state.static_tracker, frame.timestamp
        if background is None or tracker is None:
            return []
        if learn:
            changed, regions = True, background.update(frame.image, now, small)
        else:
            changed, regions = background.refresh(now)
        if changed:
            objects = [t.xyxy for t in state.tracker.alive]
            regions = [r for r in regions if not any(covered_fraction(r.xyxy, box) >= COVERED for box in objects)]
        if not changed or (not regions and not tracker.alive):
            seen = tracker.carry(now)
        else:
            seen = tracker.update(regions, now, frame.image.shape[:2], frame.image, state.rules.watched_classes)
        tracker.expire(now)
        return seen

    # ------------------------------------------------------------------ events and evidence
    def _record(self, state: CameraState, frame: FrameLike, event: ViolationEvent) -> Pending:
        violation = event.violation
        metrics.VIOLATIONS.labels(scenario=violation.scenario.id, kind=event.kind).inc()
        pictures: list[Picture] = []
        if event.kind == "start" and self.evidence is not None:
            pictures = self._start_pictures(state, frame, event)
        elif event.kind == "end" and violation.model_hash and self.evidence is not None:
            # a zone state's end: the spot once the thing is gone, the "absent" crop of a verified closure
            blackout = state.blackout.apply
            pictures = [Picture(frame.image, "clean", lambda image: blackout(image.copy()))]
        track = violation.track
        plate = None
        if self.plates is not None and self.plates.applies_to(violation.scenario):
            voted = self.plates.plate(state.camera.id, track.track_id)
            plate = voted.plate if voted is not None else None
            crop = self.plates.picture(state.camera.id, violation) if self.evidence is not None else None
            if crop is not None:
                pictures.append(Picture(crop, "plate", plate_picture=True))
        log.info("violation " + event.kind, camera=state.camera.id, scenario=violation.scenario.id,
                 zone=violation.zone_id, track=track.track_id, object=track.class_name, dwell_s=event.dwell_s,
                 plate=plate, **classified(violation))
        detection = Detection(event_id=new_id(), kind=event.kind, violation_id=violation.violation_id,
                              camera_id=state.camera.id, scenario=violation.scenario.id, zone_id=violation.zone_id,
                              object_class=class_id(track.class_name), track_id=track.track_id,
                              confidence=round(float(event.confidence), 4), bbox=[round(v, 5) for v in event.xyxy],
                              first_seen=to_iso(track.first_seen), observed_at=to_iso(event.observed_at),
                              dwell_s=float(event.dwell_s), evidence=[], plate=plate,
                              classifier=classification(violation))
        return Pending(detection, tuple(pictures))

    def _start_pictures(self, state: CameraState, frame: FrameLike, event: ViolationEvent) -> list[Picture]:
        """A start's pictures, drawn later (:meth:`finish`) from what is known now: the boxes, labels, zone."""
        violation = event.violation
        zone = next((z for z in state.zones if z.id == violation.zone_id), None) \
            if violation.zone_id != ANYWHERE else None
        boxes = [Drawn(t.xyxy, f"#{t.track_id} {t.class_name} {t.confidence:.2f}") for t in state.seen
                 if t.track_id != violation.track.track_id]
        boxes.append(Drawn(event.xyxy, " ".join([f"#{violation.track.track_id} {violation.track.class_name}",
                                                 f"{violation.scenario.id} {event.dwell_s:.0f}s",
                                                 *(f"{k} {v}" for k, v in classified(violation).items())]),
                           highlight=True))
        text = caption(state.camera.id, event.observed_at, violation.scenario.id)
        drawn_zones = [zone] if zone else []
        first = violation.track.first_frame if violation.track.first_frame is not None else frame.image
        blackout = state.blackout.apply  # the drawings (a zone's tint, a label) never cover a privacy zone either
        return [Picture(frame.image, "annotated", lambda image: blackout(annotate(image, boxes, drawn_zones, text))),
                Picture(first, "first_seen", lambda image: blackout(image.copy()))]

    def finish(self, pending: Pending, masked: bool = True) -> Detection:
        """The detection with its pictures stored (with their masked copies when masking is on and ``masked``)."""
        if self.writer is None or not pending.pictures:
            return pending.detection
        return self.writer.finish(pending, masked)

    # ------------------------------------------------------------------ camera status
    def status(self, camera_id: str, now: float, state: str = "online", reason: str = "") -> CameraStatus:
        camera = self.cameras[camera_id]
        camera.last_status_at = now
        return CameraStatus(event_id=new_id(), camera_id=camera_id, state=state, observed_at=to_iso(now),
                            last_frame_at=to_iso(camera.last_frame_at) if camera.last_frame_at else None,
                            last_inference_at=to_iso(camera.last_inference_at) if camera.last_inference_at else None,
                            active=camera.rules.active(), reason=reason)

    def due_statuses(self, now: float, known: Optional[dict[str, tuple[bool, str]]] = None) -> list[CameraStatus]:
        """Periodic status (every ``status_interval_s``), with the ``active`` violations.

        ``known`` maps camera id to (online, reason) as its reader last reported; cameras not in it
        (no state known yet) get no periodic status.  Without it every camera is reported online.
        """
        due = []
        for camera_id, camera in self.cameras.items():
            if known is not None and camera_id not in known:
                continue
            if camera.last_status_at is None or now - camera.last_status_at >= self.settings.status_interval_s:
                up, reason = (True, "") if known is None else known[camera_id]
                due.append(self.status(camera_id, now, "online" if up else "offline", reason))
        return due

    def render(self, frame: FrameLike) -> np.ndarray:
        """The frame with zones, the tracks seen in it and active violations drawn (for annotated videos)."""
        state = self.cameras[frame.camera_id]
        flagged = {v.track.track_id: v.scenario.id for v in state.rules.open_violations()}
        boxes = [Drawn(t.xyxy, f"#{t.track_id} {t.class_name} {t.confidence:.2f}"
                       + (f" {flagged[t.track_id]}" if t.track_id in flagged else ""),
                       highlight=t.track_id in flagged) for t in state.seen]
        drawn = annotate(frame.image, boxes, state.zones, caption(frame.camera_id, frame.timestamp))
        return state.blackout.apply(drawn)  # no drawing over a privacy zone


def classified(violation) -> dict[str, str]:
    """Which classifier decided the violation, for its log line and its evidence picture's label (the event carries
    it too: :func:`classification`): the second look's verdict, or the scene head's hash."""
    if violation.verdict is not None:
        return {"second_look": violation.verdict.caption()}
    return {"scene_head": violation.model_hash} if violation.model_hash else {}


def class_id(class_name: str) -> str:
    """A model's class name as the contract's id: ``dining table`` -> ``dining_table`` (an id has no spaces)."""
    return "_".join(class_name.split())


def classification(violation) -> Optional[Classification]:
    """The classifier that decided the violation, for its events: the second look, or the zone's scene head."""
    if violation.verdict is not None:
        verdict = violation.verdict
        return Classification(model=f"second_look:{verdict.model}", label=verdict.label,
                              score=round(min(max(float(verdict.score), 0.0), 1.0), 4))
    if violation.model_hash:
        return Classification(model=f"scene:{violation.model_hash}", label="present")
    return None


def run_offline(pipeline: Pipeline, frames: Iterable[FrameLike],
                on_frame=None) -> Iterator[Detection]:
    """Feed frames one at a time (offline files); ``on_frame(frame, events)`` sees each frame after processing."""
    for frame in frames:
        events = pipeline.process([frame])
        if on_frame is not None:
            on_frame(frame, events)
        yield from events
