"""The detector's plate stage: one voted plate per vehicle track in violation, read sparingly.

Only vehicles matter, and only where a vehicle scenario's rule holds: the stage reads the plate
of a track when it is in a violation of a *vehicle scenario* (every class of the scenario is in
``detector.plates.vehicle_classes``) whose condition holds at that frame (the object is seen in its
zone: its dwell counts) and the model ran on the frame (a frame the motion gate skipped shows
what was already read).  Each read looks in the track's box (plus a margin) with
:class:`~detector.plates.PlateReader` and feeds that track's :class:`~detector.plates.PlateVote`,
which weighs larger and sharper crops more.  A track is read at most every ``interval_s``
seconds of frame time, no longer once ``confident_reads`` reads agree on its voted plate (and the
vote is :data:`SURE`), and
never more than ``max_reads`` times: 150 cameras share two cores.

The voted plate (or None: never a guess) is the violation's ``plate``; the enlarged crop of the
best read of that plate is its ``plate`` evidence picture, handed out once per violation.

Example::

    >>> stage = PlateStage(PlateSettings())                                       # doctest: +SKIP
    >>> stage.step("cam-01", frame.image, now, rules.holding(now))                # doctest: +SKIP
    >>> stage.plate("cam-01", violation.track.track_id)                           # doctest: +SKIP
    VotedPlate(plate='京EMC139', confidence=0.93, reads=3, frames=3)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Optional

import cv2
import numpy as np
import structlog

from detector.plates.hyperlpr import ModelsMissing
from detector.plates.reader import Box, PlateRead, PlateReader
from detector.plates.vote import PlateVote, VotedPlate
from detector.rules import Violation
from nonsite.config import PlateSettings, Scenario

CROP_MARGIN = (0.25, 0.6)  # the plate evidence picture: the plate box grown by this share of its width, height
CROP_WIDTH = 480  # ... and enlarged to this width (never shrunk)
MAX_ENLARGE = 8.0
log = structlog.get_logger("detector.plates")
SURE = 0.8  # a voted plate this sure (share of the weight x mean confidence) with enough reads ends the reading


@dataclass
class TrackPlates:
    """One vehicle track's reads."""

    vote: PlateVote = field(default_factory=PlateVote)
    reads: int = 0  # attempts, with or without a plate found
    last_read_at: Optional[float] = None
    best: dict[str, tuple[float, np.ndarray]] = field(default_factory=dict)  # plate -> (weight, crop) of its best read
    done: bool = False  # confident, or out of reads: no more reading


@dataclass
class PlateStats:
    reads: int = 0
    found: int = 0  # reads that gave a plate
    seconds: float = 0.0  # wall time spent reading


def is_vehicle_scenario(scenario: Scenario, vehicle_classes: Iterable[str]) -> bool:
    """Every class the scenario acts on is a vehicle.

    >>> from nonsite.config import Scenario
    >>> parking = Scenario(id="p", label_zh="违停", label_en="parking", rule="dwell", classes=["car", "truck"])
    >>> is_vehicle_scenario(parking, ["car", "motorcycle", "bus", "truck"])
    True
    >>> is_vehicle_scenario(parking.model_copy(update={"classes": ["car", "dog"]}), ["car"])
    False
    """
    vehicles = set(vehicle_classes)
    return bool(scenario.classes) and set(scenario.classes) <= vehicles


def pixel_box(xyxy: tuple[float, float, float, float], shape: tuple[int, ...]) -> Box:
    """A normalised box in pixels of an image of ``shape``.

    >>> pixel_box((0.1, 0.2, 0.5, 1.0), (100, 200, 3))
    (20, 20, 100, 100)
    """
    height, width = shape[:2]
    x1, y1, x2, y2 = xyxy
    return (max(int(x1 * width), 0), max(int(y1 * height), 0), min(round(x2 * width), width),
            min(round(y2 * height), height))


def inside(read: PlateRead, box: Box) -> bool:
    """The plate's centre is inside the vehicle's box (not only in the margin around it).

    >>> inside(PlateRead("京A12345", 0.9, (40, 80, 60, 90)), (0, 0, 100, 100))
    True
    >>> inside(PlateRead("京A12345", 0.9, (105, 80, 130, 90)), (0, 0, 100, 100))
    False
    """
    cx, cy = (read.box[0] + read.box[2]) / 2, (read.box[1] + read.box[3]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def plate_crop(image: np.ndarray, box: Box) -> np.ndarray:
    """The plate with a margin, enlarged to about :data:`CROP_WIDTH` pixels wide (a copy).

    >>> plate_crop(np.zeros((100, 200, 3), np.uint8), (50, 40, 110, 60)).shape
    (235, 480, 3)
    """
    x1, y1, x2, y2 = box
    dx, dy = int((x2 - x1) * CROP_MARGIN[0]), int((y2 - y1) * CROP_MARGIN[1])
    crop = image[max(y1 - dy, 0):min(y2 + dy, image.shape[0]), max(x1 - dx, 0):min(x2 + dx, image.shape[1])]
    if crop.size == 0:
        return crop.copy()
    scale = min(MAX_ENLARGE, CROP_WIDTH / crop.shape[1])
    if scale <= 1.0:
        return crop.copy()
    return cv2.resize(crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)),
                      interpolation=cv2.INTER_CUBIC)


class PlateStage:
    """Plates of the vehicle tracks in violation, per camera; not thread-safe (the pipeline drives it)."""

    def __init__(self, settings: PlateSettings, reader: Optional[PlateReader] = None) -> None:
        self.settings = settings
        self.reader = reader or PlateReader()
        self.stats = PlateStats()
        self._tracks: dict[tuple[str, int], TrackPlates] = {}
        self._shown: set[str] = set()  # violations whose plate picture was handed out
        self.unavailable: Optional[str] = None  # why plates cannot be read here (models missing)

    def applies_to(self, scenario: Scenario) -> bool:
        return is_vehicle_scenario(scenario, self.settings.vehicle_classes)

    # ------------------------------------------------------------------ reading
    def step(self, camera_id: str, image: np.ndarray, now: float, holding: Iterable[Violation]) -> int:
        """Read the due vehicle tracks among the violations that hold at ``now``; returns the reads made."""
        done = 0
        if self.unavailable is not None:
            return done
        seen: set[int] = set()
        for violation in holding:
            track = violation.track
            if track.track_id in seen or not self.applies_to(violation.scenario):
                continue
            seen.add(track.track_id)
            state = self._tracks.setdefault((camera_id, track.track_id), TrackPlates())
            if state.done or (state.last_read_at is not None and now - state.last_read_at < self.settings.interval_s):
                continue
            self._read(state, image, pixel_box(track.xyxy, image.shape), now)
            done += 1
        return done

    def _read(self, state: TrackPlates, image: np.ndarray, box: Box, now: float) -> None:
        started = time.perf_counter()
        try:
            reads = [r for r in self.reader.read(image, box) if inside(r, box)]
        except ModelsMissing as missing:  # detections go on without plates; said once, loudly
            self.unavailable = str(missing)
            log.error("plate models missing: no plates read", reason=self.unavailable)
            return
        self.stats.seconds += time.perf_counter() - started
        self.stats.reads += 1
        state.reads += 1
        state.last_read_at = now
        if reads:
            self.stats.found += 1
            best = max(reads, key=lambda r: (r.box[2] - r.box[0]) * (r.box[3] - r.box[1]) * r.confidence)
            weight = state.vote.add(best, image)
            if best.plate not in state.best or state.best[best.plate][0] < weight:
                state.best[best.plate] = (weight, plate_crop(image, best.box))
        result = state.vote.result()
        confident = result is not None and result.reads >= self.settings.confident_reads and result.confidence >= SURE
        state.done = confident or state.reads >= self.settings.max_reads

    # ------------------------------------------------------------------ results
    def plate(self, camera_id: str, track_id: int) -> Optional[VotedPlate]:
        """The track's voted plate, or None (never read, unreadable, or the reads disagree)."""
        state = self._tracks.get((camera_id, track_id))
        return state.vote.result() if state is not None else None

    def picture(self, camera_id: str, violation: Violation) -> Optional[np.ndarray]:
        """The enlarged crop of the violation's voted plate, the first time it is asked once the plate is known."""
        if violation.violation_id in self._shown:
            return None
        state = self._tracks.get((camera_id, violation.track.track_id))
        result = state.vote.result() if state is not None else None
        if state is None or result is None or result.plate not in state.best:
            return None
        crop = state.best[result.plate][1]
        if crop.size == 0:
            return None
        self._shown.add(violation.violation_id)
        return crop

    def forget(self, camera_id: str, keep: Iterable[int], ended: Iterable[str] = ()) -> None:
        """Drop the camera's tracks not in ``keep`` (gone, and in no open violation) and ended violations."""
        kept = set(keep)
        for key in [k for k in self._tracks if k[0] == camera_id and k[1] not in kept]:
            del self._tracks[key]
        self._shown.difference_update(ended)
