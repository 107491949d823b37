"""Playing labelled media through the detector, as ``nonsite detect-file`` plays a video.

Both commands build the pipeline with :func:`file_pipeline` (the city's scenarios and detector
settings, one camera, the evidence store) and feed it one frame at a time with
:func:`detector.pipeline.run_offline`.  A video is sampled every ``interval_s`` of video time by
:func:`detector.sources.iter_file_frames` (what ``detect-file`` reads), once, and its samples are played
``loops`` times in a row with the clock running on.  A still is what a snapshot camera returning the
same picture gives: the decoded image (read-only) every ``interval_s`` for ``hold_s`` seconds.

Example::

    >>> frames = list(still_frames(np.zeros((4, 4, 3), np.uint8), "q01", hold_s=3, interval_s=1, start_epoch=10))
    >>> [(f.timestamp, f.index) for f in frames]
    [(10.0, 0), (11.0, 1), (12.0, 2)]
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import cv2
import numpy as np

from contract import Detection, to_epoch
from detector.evaluation.labels import Defaults, MediaLabel
from detector.evaluation.scoring import Observed, Score, score_file
from detector.pipeline import ObjectDetector, Pipeline, run_offline
from detector.sources import Frame, iter_file_frames
from nonsite.config import Camera, City
from nonsite.evidence import EvidenceStore


def file_pipeline(city: City, camera: Camera, detector: ObjectDetector, store: Optional[EvidenceStore]) -> Pipeline:
    """The pipeline a file is run through: the city's scenarios and detector settings, on one camera."""
    return Pipeline([camera], city.scenarios, city.detector, detector, store)


@dataclass
class ScenarioTally:
    starts: int = 0
    updates: int = 0
    ends: int = 0


def tally(events: list[Detection]) -> dict[str, ScenarioTally]:
    """Starts, updates and ends per scenario, in the order scenarios first appear."""
    counts: dict[str, ScenarioTally] = {}
    for event in events:
        count = counts.setdefault(event.scenario, ScenarioTally())
        setattr(count, event.kind + "s", getattr(count, event.kind + "s") + 1)
    return counts


# ------------------------------------------------------------------ playback
def still_frames(image: np.ndarray, camera_id: str, hold_s: float, interval_s: float,
                 start_epoch: float) -> Iterator[Frame]:
    """The same picture every ``interval_s`` for ``hold_s`` seconds (the first frame at ``start_epoch``)."""
    image.setflags(write=False)  # held for minutes: a stage writing into it would fail here, not corrupt the rest
    for index in range(max(1, math.ceil(hold_s / interval_s - 1e-9))):
        yield Frame(camera_id, image, float(start_epoch) + index * interval_s, index)


def looped_frames(video: Path, camera_id: str, loops: int, interval_s: float,
                  start_epoch: float) -> Iterator[Frame]:
    """The video's samples played ``loops`` times in a row; the clock runs on, one interval between plays."""
    play = list(iter_file_frames(video, interval_s, start_epoch=0.0, camera_id=camera_id))
    if not play:
        return
    for frame in play:
        frame.image.setflags(write=False)
    length = play[-1].timestamp + interval_s
    for loop in range(loops):
        for frame in play:
            yield Frame(camera_id, frame.image, start_epoch + loop * length + frame.timestamp,
                        loop * len(play) + frame.index)


def read_still(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # EXIF orientation applied, as the zones were drawn
    if image is None:
        raise FileNotFoundError(f"{path}: not a readable image")
    return image


@dataclass(frozen=True)
class Playback:
    """How one labelled file is played: its frames, how many, and over how many seconds."""

    path: Path
    frames: Callable[[str, float], Iterator[Frame]]  # (camera id, start epoch) -> frames
    count: int
    interval_s: float
    how: str

    @property
    def seconds(self) -> float:
        return self.count * self.interval_s


def playback(item: MediaLabel, media_dir: Path, defaults: Defaults,
             probe: Callable[[Path], tuple[float, int]]) -> Playback:
    """The file's playback as labelled; ``probe(video)`` gives a video's ``(fps, frame count)`` or raises
    (``detector.cli.probe_video``: one line for a missing, empty or broken file)."""
    from nonsite.errors import CommandError

    path = media_dir / item.path
    interval = item.interval_s(defaults)
    if item.still:
        if not path.is_file():
            raise CommandError(f"{path}: image file not found")
        hold = item.hold_s(defaults)
        count = max(1, math.ceil(hold / interval - 1e-9))
        return Playback(path, lambda camera_id, start: still_frames(read_still(path), camera_id, hold, interval,
                                                                    start),
                        count, interval, f"still held {hold:g} s, a frame every {interval:g} s")
    fps, frame_count = probe(path)
    per_play = int(frame_count / fps / interval) + 1 if frame_count else 1
    loops = item.loops(defaults, per_play * interval)
    return Playback(path, lambda camera_id, start: looped_frames(path, camera_id, loops, interval, start),
                    per_play * loops, interval,
                    f"video played {loops} times, a frame every {interval:g} s")


# ------------------------------------------------------------------ one file
@dataclass
class FileResult:
    path: str
    how: str
    frames: int
    inferred: int
    video_s: float
    run_s: float
    events: list[dict] = field(default_factory=list)
    scores: dict[str, Score] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"path": self.path, "how": self.how, "frames": self.frames, "inferred": self.inferred,
                "video_s": round(self.video_s, 1), "run_s": round(self.run_s, 2), "events": self.events,
                "scores": {scenario: score.as_dict() for scenario, score in self.scores.items()}}


def evaluate_file(city: City, item: MediaLabel, play: Playback, camera_id: str, detector: ObjectDetector,
                  store: Optional[EvidenceStore], start_epoch: Optional[float] = None,
                  on_frame: Optional[Callable[[], None]] = None) -> FileResult:
    """Run one labelled file through the pipeline and score its events against its labels."""
    camera = Camera(id=camera_id, name=item.path, source=str(play.path), location={"lat": 0.0, "lon": 0.0},
                    grid="EVAL", sample_interval_s=play.interval_s, zones=item.zones)
    pipeline = file_pipeline(city, camera, detector, store)
    began = time.perf_counter()
    start = time.time() if start_epoch is None else start_epoch
    events = list(run_offline(pipeline, play.frames(camera_id, start),
                              on_frame=(lambda frame, found: on_frame()) if on_frame else None))
    observed = [Observed(e.kind, e.scenario, e.zone_id, e.violation_id) for e in events]
    return FileResult(item.path, play.how, pipeline.stats.frames, pipeline.stats.inferred, play.seconds,
                      time.perf_counter() - began,
                      [{"kind": e.kind, "scenario": e.scenario, "zone": e.zone_id, "object": e.object_class,
                        "at_s": round(to_epoch(e.observed_at) - start, 1), "violation_id": e.violation_id}
                       for e in events if e.kind != "update"],
                      score_file(item.expect, observed))
