"""Zone-state classifiers: is a zone's thing (a pile, laundry, an ad, a stall, goods outside a shop) there now?

For each zone of a kind a scene scenario watches (``scene.enabled`` in scenarios.yaml), every
``detector.scenes.interval_s`` the zone's crop (its polygon's bounding box) is embedded and the scenario's head
gives a probability.  The zone's state changes only after ``consecutive`` samples in a row say the same, so one
odd frame neither raises nor clears it; while it is "present" the rules see a ``scene`` object in the zone and
the scenario's dwell counts.  There is no background to learn: a pile already there in the first frame is
present from the first samples on, and gone once the samples say so.  A frame the motion gate found unchanged
is the same picture: its sample repeats the last probability instead of embedding it again.

A spot's own head (:mod:`detector.classify.spots`, ``<spots_dir>/<camera>/<zone>/<scenario>.npz``) takes over
from the generic one when it is ready.  The file is looked at (its size and modification time) at each of
the zone's samples, so a head retrained by ``nonsite spots train`` is used from the next sample on, without
a restart; its hash goes with the events it decides.

Example::

    >>> state = ZoneState(consecutive=3)
    >>> [state.sample(said) for said in (True, True, False, True, True, True, False)]
    [False, False, False, False, False, True, True]
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import structlog

from detector.classify.heads import LinearHead, embedding
from detector.classify.spots import load_spot, spot_file
from detector.classify.tflite import ImageModel, zone_box
from detector.tracking import Track
from detector.zones import ZoneArea
from nonsite.config import Scenario
from nonsite.config.system import SceneSettings

log = structlog.get_logger("detector.scenes")

SCENE_CLASS = "scene"  # the object class of a zone's state, as the events show it


@dataclass
class ZoneState:
    """Present or absent, changed after ``consecutive`` identical samples."""

    consecutive: int
    present: bool = False
    run_of: Optional[bool] = None
    run: int = 0

    def sample(self, said_present: bool) -> bool:
        """Add one sample; returns the state after it."""
        self.run = self.run + 1 if said_present == self.run_of else 1
        self.run_of = said_present
        if self.run >= self.consecutive:
            self.present = said_present
        return self.present


@dataclass(frozen=True)
class SceneSighting:
    """A zone whose state is "present" at this frame, for one scenario."""

    scenario_id: str
    zone_id: str
    track: Track
    model_hash: str


@dataclass
class WatchedZone:
    zone: ZoneArea
    scenario: Scenario
    head: LinearHead
    source: str  # generic or spot
    state: ZoneState
    generic: Optional[LinearHead] = None  # the scenario's shipped head, used while the spot has no ready head
    spot: Optional[Path] = None  # where the spot's own head is (or will be)
    spot_stamp: Optional[tuple[int, int]] = None  # (size, mtime_ns) of the spot file as last loaded
    track: Optional[Track] = None  # the present episode's object
    probability: Optional[float] = None
    sampled_at: Optional[float] = None

    @property
    def box(self) -> tuple[float, float, float, float]:
        return zone_box(self.zone.polygon)

    def reload(self) -> bool:
        """Take the spot's head when its file is new or changed and ready (back to the generic head when it is
        gone or not ready); True when the head changed.  A file that cannot be read keeps the current head."""
        spot = self.spot
        try:
            info = spot.stat() if spot is not None else None
        except OSError:
            info = None
        stamp = (info.st_size, info.st_mtime_ns) if info is not None else None
        if stamp == self.spot_stamp:
            return False
        head, source = self.generic, "generic"
        if stamp is not None and spot is not None:
            try:
                own = load_spot(spot, self.scenario.id)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("spot head unreadable; the current head stays", spot=str(spot), error=str(exc))
                return False
            if own.about.get("ready"):
                head, source = own, "spot"
        self.spot_stamp = stamp
        changed = head is not None and (self.head is None or head.model_hash != self.head.model_hash)
        if head is not None:
            if changed:
                log.info("scene head in use", zone=self.zone.id, scenario=self.scenario.id, head=head.model_hash,
                         source=source, about=dict(head.about))
            self.head, self.source = head, source
        return changed


@dataclass
class SceneStats:
    embeddings: int = 0
    samples: int = 0
    seconds: float = 0.0


@dataclass
class SceneWatcher:
    """One camera's watched zones; :meth:`step` on every frame, in time order."""

    camera_id: str
    embedder: ImageModel
    watched: list[WatchedZone]
    interval_s: float
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1_000_000))
    stats: SceneStats = field(default_factory=SceneStats)

    @classmethod
    def build(cls, camera_id: str, zones: Sequence[ZoneArea], scenarios: Sequence[Scenario], embedder: ImageModel,
              heads: dict[str, LinearHead], settings: SceneSettings, spots_dir: Optional[Path],
              ids: Optional[Iterator[int]] = None) -> Optional["SceneWatcher"]:
        """The camera's watcher, or None when no zone of it is watched by a scene scenario with a head."""
        watched = []
        for scenario in scenarios:
            if scenario.scene is None or not scenario.scene.enabled:
                continue
            for zone in (z for z in zones if z.kind in scenario.zone_kinds):
                generic = heads.get(scenario.id)
                spot = spot_file(spots_dir, camera_id, zone.id, scenario.id) if spots_dir else None
                zone_watch = WatchedZone(zone, scenario, generic, "generic", ZoneState(settings.consecutive),
                                         generic, spot)  # type: ignore[arg-type]  (a head is checked below)
                zone_watch.reload()
                if zone_watch.head is None:
                    log.warning("no scene head for this scenario; its zones are not classified",
                                scenario=scenario.id, camera=camera_id, zone=zone.id)
                    continue
                watched.append(zone_watch)
        if not watched:
            return None
        return cls(camera_id, embedder, watched, settings.interval_s, ids or itertools.count(1_000_000))

    def owned(self) -> frozenset[tuple[str, str]]:
        """(scenario id, zone id) pairs whose state this watcher decides."""
        return frozenset((w.scenario.id, w.zone.id) for w in self.watched)

    def step(self, image: np.ndarray, now: float, changed: bool = True) -> list[SceneSighting]:
        """Sample the zones that are due; the sightings of every zone present now.

        ``changed`` False: the picture is the one of the last sample (the motion gate saw nothing move),
        so a due sample repeats the last probability."""
        import time

        started = time.perf_counter()
        embedded: dict[str, np.ndarray] = {}
        for watched in self.watched:
            if watched.sampled_at is not None and now - watched.sampled_at < self.interval_s:
                continue
            if watched.reload():
                watched.probability = None  # a new head: embed the picture again
            if changed or watched.probability is None:
                features = embedded.get(watched.zone.id)
                if features is None:
                    features = embedded[watched.zone.id] = embedding(self.embedder, image, watched.box)
                watched.probability = watched.head.probability(features)
            watched.sampled_at = now
            self.stats.samples += 1
            was = watched.state.present
            present = watched.state.sample(watched.probability >= watched.scenario.scene.threshold)
            if present != was:
                self._changed(watched, image, now, present)
        self.stats.embeddings += len(embedded)
        self.stats.seconds += time.perf_counter() - started
        return [self._sighting(w, now) for w in self.watched if w.state.present]

    def _changed(self, watched: WatchedZone, image: np.ndarray, now: float, present: bool) -> None:
        log.info("zone state " + ("present" if present else "absent"), camera=self.camera_id, zone=watched.zone.id,
                 scenario=watched.scenario.id, probability=round(watched.probability or 0.0, 3),
                 head=watched.head.model_hash, source=watched.source)
        watched.track = None
        if present:
            box = watched.box
            watched.track = Track(next(self.ids), SCENE_CLASS, watched.probability or 0.0, box, now, now, box,
                                  first_frame=image.copy())

    @staticmethod
    def _sighting(watched: WatchedZone, now: float) -> SceneSighting:
        track = watched.track
        assert track is not None
        track.confidence, track.last_seen = watched.probability or track.confidence, now
        return SceneSighting(watched.scenario.id, watched.zone.id, track, watched.head.model_hash)
