"""Stable per-camera track ids on our own detections, driven by frame timestamps (never wall time).

ultralytics' ByteTrack (or BoT-SORT) associates detections frame to frame; this module wraps it so
that:

* it runs on plain :class:`~detector.inference.DetectedObject` lists, one tracker per camera, so
  inference can batch many cameras and tracking still sees one camera at a time;
* a track ends only after ``lost_after_s`` seconds of frame time without being seen (ByteTrack's
  own frame-count buffer is disabled), so a missed detection or a short occlusion keeps the id;
* one physical object stays one track whatever class the model flickers between: overlapping
  boxes of one class group (``detector.objects.class_groups``: car, truck, bus...) are merged to
  the most confident before tracking (:func:`~detector.inference.merge_within_groups`), a track
  matches detections of its own group only, and its class is the most frequent of its last
  ``class_vote`` detections;
* a ByteTrack id that does reappear as a new id right where a recently lost track of the same
  group was is stitched back to that track's stable id;
* the picture's *scene* changes only when the motion gate sees motion: every object seen since the
  last change is still there while nothing moves.  On a frame the gate skipped,
  :meth:`CameraTracker.carry` counts them as seen again, and an inference without motion (a
  periodic re-check) that misses one of them is a detector miss, not a departure, so the track is
  carried too.  A departure always comes with motion; after an inference on motion that misses a
  known object, :meth:`CameraTracker.needs_inference` asks for the next frame to be inferred too
  (if it comes within half of ``lost_after_s``), so a one-frame miss is corrected at once.

Example::

    >>> tracker = CameraTracker(lost_after_s=10)
    >>> dog = DetectedObject("dog", 0.9, (0.4, 0.5, 0.6, 0.9))
    >>> [t.track_id for t in tracker.update([dog], 0.0)]
    [1]
    >>> tracker.update([], 1.0, scene_changed=True), [t.track_id for t in tracker.update([dog], 2.0)]
    ([], [1])
    >>> [t.track_id for t in tracker.expire(12.5)]
    [1]

A van the model calls a bus, then a car and a bus on one spot (merged: the car is surer), then a
bus, then a car: one track, and its class stays the bus it has been voted::

    >>> van, tracker = (0.3, 0.4, 0.7, 0.9), CameraTracker(lost_after_s=10)
    >>> frames = [[DetectedObject("bus", 0.8, van)],
    ...           [DetectedObject("car", 0.6, van), DetectedObject("bus", 0.5, van)],
    ...           [DetectedObject("bus", 0.9, van)], [DetectedObject("car", 0.7, van)]]
    >>> [[(t.track_id, t.class_name) for t in tracker.update(found, float(second))]
    ...  for second, found in enumerate(frames)]
    [[(1, 'bus')], [(1, 'bus')], [(1, 'bus')], [(1, 'bus')]]
"""
from __future__ import annotations

import itertools
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

import numpy as np

from detector.inference import ClassGroups, DetectedObject, merge_within_groups
from detector.zones import Box, iou
from nonsite.config.system import ObjectSettings

STITCH_IOU = 0.3
_CANVAS = (1000, 1000)  # (h, w) when the frame size is unknown; IoU matching does not depend on it


@dataclass
class Track:
    """One object followed over time on one camera."""

    track_id: int
    class_name: str
    confidence: float
    xyxy: Box
    first_seen: float
    last_seen: float
    first_xyxy: Box
    first_frame: Optional[object] = field(default=None, repr=False)  # clean image when first seen
    class_vote: int = field(default=10, repr=False)  # how many recent detections vote on the class
    recent_classes: deque[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.recent_classes = deque(maxlen=self.class_vote)

    def seen(self, detection: DetectedObject, timestamp: float) -> None:
        self.recent_classes.append(detection.class_name)
        self.class_name = majority(self.recent_classes, self.class_name)
        self.confidence, self.xyxy = detection.confidence, detection.xyxy
        self.last_seen = timestamp


def majority(votes: Iterable[str], current: str) -> str:
    """The most frequent class; on a tie the current one stays, else the latest of the tied."""
    counts = Counter(votes)
    if not counts:
        return current
    top = max(counts.values())
    tied = [name for name, count in counts.items() if count == top]
    if current in tied:
        return current
    return next(name for name in reversed(list(votes)) if name in tied)


def load_tracker_args(name: str = "bytetrack.yaml"):
    """A tracker YAML from ultralytics (``bytetrack.yaml``, ``botsort.yaml``) or a path, as a namespace."""
    from ultralytics.utils import YAML, IterableSimpleNamespace
    from ultralytics.utils.checks import check_yaml

    return IterableSimpleNamespace(**YAML.load(check_yaml(name)))


def _make_byte_tracker(args):
    from ultralytics.trackers import BOTSORT, BYTETracker

    kind = getattr(args, "tracker_type", "bytetrack")
    if kind not in ("bytetrack", "botsort"):
        raise ValueError(f"detector.tracker: tracker_type '{kind}' is not supported (bytetrack or botsort)")
    args = type(args)(**{**dict(args), "track_buffer": 10**9})  # frame-count expiry off: we expire by time
    if kind == "botsort":
        args = type(args)(**{**dict(args), "with_reid": False, "gmc_method": "none"})
        return _within_groups(BOTSORT)(args)
    return _within_groups(BYTETracker)(args)


def _within_groups(tracker_class):
    """The tracker class, matching a track only to detections of its own class group.

    ultralytics matches on overlap alone, so a parked bicycle's track could take over a person
    walking past it.  Our rows carry the group's index as their class; pairs of two groups get the
    largest cost.  Only the high-score stages use ``get_dists``; the low-score stage sees detections
    under ``track_high_thresh``, which ``detector.min_confidence`` (0.25) already drops.
    """
    class WithinGroups(tracker_class):
        def get_dists(self, tracks, detections):
            dists = super().get_dists(tracks, detections)
            if len(tracks) and len(detections):
                same = np.array([t.cls for t in tracks])[:, None] == np.array([d.cls for d in detections])[None, :]
                dists = np.where(same, dists, 1.0)
            return dists

    return WithinGroups


class CameraTracker:
    """Tracks of one camera.  Call :meth:`update` on inferred frames, :meth:`carry` on skipped ones,
    :meth:`expire` on every frame (all in frame-time order)."""

    def __init__(self, lost_after_s: float = 10.0, tracker: str = "bytetrack.yaml",
                 ids: Optional[Iterator[int]] = None, tracker_args=None, objects: Optional[ObjectSettings] = None):
        self.lost_after_s = lost_after_s
        self.objects = objects or ObjectSettings()
        self.groups = ClassGroups.of(self.objects.class_groups)
        self._byte = _make_byte_tracker(tracker_args or load_tracker_args(tracker))
        self._ids = ids if ids is not None else itertools.count(1)
        self._tracks: dict[int, Track] = {}
        self._by_byte_id: dict[int, int] = {}
        self._scene: set[int] = set()  # tracks seen since the picture last changed
        self._force_until: Optional[float] = None  # infer the next frame if it comes before this time
        self._frames: dict[int, tuple[float, Optional[np.ndarray]]] = {}  # ByteTrack frame id -> (time, image)
        self._group_index: dict[str, int] = {}

    # ------------------------------------------------------------------ frames
    def update(self, detections: list[DetectedObject], timestamp: float,
               shape: Optional[tuple[int, int]] = None, image: Optional[np.ndarray] = None,
               keep_first_frame: frozenset[str] = frozenset(), scene_changed: bool = True) -> list[Track]:
        """Associate one inferred frame's detections; returns the tracks present in it.

        ``scene_changed`` is False when the motion gate saw no motion (a forced or periodic
        inference): objects of this scene the model missed are then carried as present.
        ``image`` is kept as the clean first-seen frame of new tracks whose class is in ``keep_first_frame``.
        """
        from ultralytics.engine.results import Boxes

        detections = merge_within_groups(detections, self.groups, self.objects.merge_iou)
        height, width = shape or _CANVAS
        rows = np.zeros((len(detections), 6), np.float32)
        for index, detection in enumerate(detections):
            x1, y1, x2, y2 = detection.xyxy
            group = self._group_index.setdefault(self.groups.group_of(detection.class_name), len(self._group_index))
            rows[index] = (x1 * width, y1 * height, x2 * width, y2 * height, detection.confidence, group)
        output = self._byte.update(Boxes(rows, (height, width)), None)
        frame_id = self._byte.frame_id
        self._frames[frame_id] = (timestamp, image)
        matched = {self._by_byte_id[int(row[4])] for row in output if int(row[4]) in self._by_byte_id}
        starts = {s.track_id: s.start_frame for s in self._byte.tracked_stracks}
        seen: list[Track] = []
        for row in output:
            byte_id, det_index = int(row[4]), int(row[7])
            detection = detections[det_index]
            first_at, first_image = self._frames.get(starts.get(byte_id, frame_id), (timestamp, image))
            track = self._stable_track(byte_id, detection, first_at, matched)
            track.seen(detection, timestamp)
            if track.first_frame is None and track.first_seen == first_at and detection.class_name in keep_first_frame:
                track.first_frame = first_image
            matched.add(track.track_id)
            seen.append(track)
        seen_ids = {t.track_id for t in seen}
        self._force_until = None  # this inference was the re-look (or needed none)
        if scene_changed:
            missing = any(i not in seen_ids for i in self._tracks)
            self._scene = set(seen_ids)
            self._force_until = timestamp + self.lost_after_s / 2 if missing else None
        else:
            seen.extend(self.carry(timestamp, exclude=seen_ids))
            self._scene |= seen_ids
        self._forget_frames(frame_id)
        return seen

    def carry(self, timestamp: float, exclude: set[int] = frozenset()) -> list[Track]:
        """No motion since the scene last changed: every object seen in this scene is still there."""
        carried = [self._tracks[i] for i in sorted(self._scene) if i in self._tracks and i not in exclude]
        for track in carried:
            track.last_seen = timestamp
        return carried

    def expire(self, timestamp: float) -> list[Track]:
        """Tracks unseen for ``lost_after_s``: removed and returned."""
        gone = [t for t in self._tracks.values() if timestamp - t.last_seen >= self.lost_after_s]
        if not gone:
            return []
        gone_ids = {t.track_id for t in gone}
        dead_byte = {b for b, s in self._by_byte_id.items() if s in gone_ids}
        for strack in self._byte.lost_stracks:
            if strack.track_id in dead_byte:
                strack.mark_removed()
        self._byte.lost_stracks = [s for s in self._byte.lost_stracks if s.track_id not in dead_byte]
        self._byte.tracked_stracks = [s for s in self._byte.tracked_stracks if s.track_id not in dead_byte]
        for byte_id in dead_byte:
            del self._by_byte_id[byte_id]
        for track_id in gone_ids:
            del self._tracks[track_id]
        self._scene -= gone_ids
        return sorted(gone, key=lambda t: t.track_id)

    # ------------------------------------------------------------------ state
    @property
    def alive(self) -> list[Track]:
        """Every track not yet expired, seen in the last frame or not."""
        return list(self._tracks.values())

    def needs_inference(self, timestamp: float) -> bool:
        """True shortly after motion made a known object disappear: infer again to tell a miss from a departure."""
        if self._force_until is None or timestamp > self._force_until:
            return False
        return any(i not in self._scene for i in self._tracks)

    def _forget_frames(self, frame_id: int) -> None:
        """Keep the frames new (unconfirmed) tracks may have started in: this one and the previous."""
        for old in [f for f in self._frames if f < frame_id - 1]:
            del self._frames[old]

    def _stable_track(self, byte_id: int, detection: DetectedObject, timestamp: float,
                      taken: set[int]) -> Track:
        stable_id = self._by_byte_id.get(byte_id)
        if stable_id is not None and stable_id in self._tracks:
            return self._tracks[stable_id]
        track = self._stitch(detection, taken)
        if track is None:
            track = Track(next(self._ids), detection.class_name, detection.confidence, detection.xyxy,
                          timestamp, timestamp, detection.xyxy, class_vote=self.objects.class_vote)
            self._tracks[track.track_id] = track
        self._by_byte_id[byte_id] = track.track_id
        return track

    def _stitch(self, detection: DetectedObject, taken: set[int]) -> Optional[Track]:
        """A not-yet-expired track of the same group, unmatched in this frame, where this new detection is."""
        group = self.groups.group_of(detection.class_name)
        candidates = [t for t in self._tracks.values()
                      if t.track_id not in taken and self.groups.group_of(t.class_name) == group]
        best = max(candidates, key=lambda t: iou(t.xyxy, detection.xyxy), default=None)
        if best is not None and iou(best.xyxy, detection.xyxy) >= STITCH_IOU:
            return best
        return None
