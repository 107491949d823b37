"""Scenario rules: from tracks in zones to violation lifecycles (``start`` once, ``update``, ``end``).

Rules are generic over class names and zone kinds; every parameter comes from ``configs/scenarios.yaml``:

* ``dwell`` — an object of one of the classes, its bottom-centre in a zone of one of the kinds, stays
  (bottom-centre displacement below ``max_displacement`` of the frame diagonal) for ``dwell_s``;
* ``unaccompanied`` — no ``companion_classes`` object within ``companion_distance`` x the object's
  size (stray dog without a person), for ``dwell_s``;
* ``with_person`` — a prop (stall, umbrella, table...) that stays, with a companion near it;
* ``static_foreground`` — as ``dwell``, on the model's class when it has one, else on the
  ``static_object`` regions of the background model (:mod:`detector.background`).

A violation is keyed by (scenario, track id): it emits ``start`` when its dwell passes ``dwell_s``,
``update`` at most every ``update_interval_s`` while it lasts, and ``end`` once its condition has not
held for ``lost_after_s`` (the object left, or its track expired).  Never one event per frame.

One physical object keeps one violation (``detector.objects``, docs/detector.md):

* once started, the object stays while its box still covers its spot (IoU with where it stood of at
  least ``same_spot_iou``), even when its bottom-centre drifts past ``max_displacement`` because a
  passing car hides part of it or the box grows and shrinks;
* a new track of the same class group where a violation's object stood, while that object's own
  track is not seen, is the same object tracked again: it takes the violation over (same
  ``violation_id``, dwell counted on) instead of an ``end`` and a second ``start``.

Classifiers beside the model (docs/detector.md):

* the second look: a scenario's ``second_look`` (confirm, rescue) makes a candidate wait at its ``start`` for
  the ImageNet classifier to agree (``look``, given to :meth:`CameraRules.step`); declined, it is looked at
  again ``retry_s`` later; a ``rescue_classes`` box is a candidate only with a classifier (``second_look``);
* zone states: a zone whose scene classifier says "present" is seen as a ``scene`` object there
  (``Frame.scenes``), with the scenario's dwell; the classifier owns that scenario in that zone
  (``scene_owned``), so the model's boxes there do not make a second violation of it; the zone's head has decided
  it, so its start does not wait for the second look (that judges the model's object candidates).

Props together are one violation (``with_person``): a prop due to start next to a started violation of its
scenario in the same zone (their boxes touch once each is grown by half its size) becomes part of it instead
of a second start, and keeps it open while it stays: a terrace of umbrellas, tables and chairs is one case.

Example::

    >>> from nonsite.config import Scenario
    >>> dog_rule = Scenario(id="stray_dog", label_zh="流浪犬", label_en="Stray dog", rule="unaccompanied",
    ...                     classes=["dog"], companion_classes=["person"], dwell_s=60)
    >>> rules = CameraRules("cam-01", [], [dog_rule], lost_after_s=10, update_interval_s=60)
    >>> dog = Track(1, "dog", 0.9, (0.4, 0.5, 0.6, 0.9), 0.0, 0.0, (0.4, 0.5, 0.6, 0.9))
    >>> [e.kind for t in range(0, 200) for e in rules.step(Frame(t, seen=[dog] if t < 100 else [],
    ...                                                                 alive=[dog] if t < 100 else []))]
    ['start', 'end']
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from nonsite.config import Scenario
from nonsite.config.system import ObjectSettings
from detector.inference import ClassGroups
from detector.tracking import Track
from detector.zones import Box, ZoneArea, bottom_centre, centre, iou

ANYWHERE = ""  # zone id of scenarios without zone kinds


@dataclass(frozen=True)
class Frame:
    """What the rules see at one frame time: tracks seen in it (or carried), and every live track."""

    timestamp: float
    seen: Sequence[Track] = ()
    alive: Sequence[Track] = ()
    shape: tuple[int, int] = (1000, 1000)  # (h, w) pixels: displacement and distance are measured in pixels
    scenes: Sequence[Any] = ()  # detector.classify.scenes.SceneSighting: zones whose state is "present"


@dataclass
class Violation:
    """One object violating one scenario, from first condition to end."""

    camera_id: str
    scenario: Scenario
    track: Track
    zone_id: str
    since: float  # when the condition started to hold (dwell counts from here)
    anchor: Box  # where the object stood at ``since``
    last_true: float
    started_at: Optional[float] = None
    last_event_at: Optional[float] = None
    xyxy: Box = (0.0, 0.0, 0.0, 0.0)
    confidence: float = 0.0
    verdict: Optional[Any] = None  # the second look's (detector.classify.second_look.Verdict)
    look_after: float = 0.0  # declined by the second look: not looked at again before this time
    model_hash: str = ""  # the scene head that saw it (a zone state's violation)
    part_of: Optional["Violation"] = None  # a started violation this prop belongs to (with_person: one terrace)
    opened_by: int = field(init=False)  # its first track: the id keeps naming it after another track takes over

    def __post_init__(self) -> None:
        self.opened_by = self.track.track_id

    @property
    def violation_id(self) -> str:
        return f"{self.camera_id}/{self.opened_by}/{self.scenario.id}/{int(self.since)}"

    @property
    def started(self) -> bool:
        return self.started_at is not None

    @property
    def active_key(self) -> str:
        return f"{self.scenario.id}/{self.zone_id}"


@dataclass(frozen=True)
class ViolationEvent:
    kind: str  # start | update | end
    violation: Violation
    observed_at: float
    dwell_s: float
    xyxy: Box
    confidence: float


def displacement(a: Box, b: Box, shape: tuple[int, int]) -> float:
    """Bottom-centre displacement between two boxes as a fraction of the frame diagonal."""
    height, width = shape
    (xa, ya), (xb, yb) = bottom_centre(a), bottom_centre(b)
    return math.hypot((xa - xb) * width, (ya - yb) * height) / math.hypot(width, height)


def touching(a: Box, b: Box, slack: float = 0.5) -> bool:
    """The boxes overlap once each is grown by ``slack`` of its own width and height on every side."""
    def grown(box: Box) -> Box:
        dx, dy = slack * (box[2] - box[0]), slack * (box[3] - box[1])
        return (box[0] - dx, box[1] - dy, box[2] + dx, box[3] + dy)
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = grown(a), grown(b)
    return ax1 < bx2 and bx1 < ax2 and ay1 < by2 and by1 < ay2


def near(obj: Box, other: Box, factor: float, shape: tuple[int, int]) -> bool:
    """``other``'s centre within ``factor`` x the object's size (its longer side) of the object's centre."""
    height, width = shape
    (xa, ya), (xb, yb) = centre(obj), centre(other)
    size = max((obj[2] - obj[0]) * width, (obj[3] - obj[1]) * height)
    return math.hypot((xa - xb) * width, (ya - yb) * height) <= factor * size


@dataclass
class CameraRules:
    """Every enabled scenario's rule on one camera's tracks."""

    camera_id: str
    zones: list[ZoneArea]
    scenarios: list[Scenario]
    lost_after_s: float = 10.0
    update_interval_s: float = 60.0
    objects: ObjectSettings = field(default_factory=ObjectSettings)
    second_look: bool = False  # an ImageNet classifier is loaded: second_look rules apply
    scene_owned: frozenset[tuple[str, str]] = frozenset()  # (scenario id, zone id) decided by a zone's state
    _open: dict[tuple[str, int], Violation] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scenarios = [s for s in self.scenarios if s.enabled and self._has_zone_for(s)]
        self.groups = ClassGroups.of(self.objects.class_groups)

    def _has_zone_for(self, scenario: Scenario) -> bool:
        return not scenario.zone_kinds or any(z.kind in scenario.zone_kinds for z in self.zones)

    @property
    def watched_classes(self) -> frozenset[str]:
        """Classes some scenario on this camera acts on (companions excluded), rescued ones included."""
        return frozenset(c for s in self.scenarios for c in self.classes_of(s))

    def classes_of(self, scenario: Scenario) -> tuple[str, ...]:
        rule = scenario.second_look
        rescued = rule.rescue_classes if self.second_look and rule is not None and rule.mode == "rescue" else []
        return tuple(scenario.classes) + tuple(rescued)

    def needs_look(self, scenario: Scenario, class_name: str) -> bool:
        rule = scenario.second_look
        return self.second_look and rule is not None and (
            rule.mode == "confirm" or (rule.mode == "rescue" and class_name in rule.rescue_classes))

    def step(self, frame: Frame, look: Optional[Callable[[Violation], Any]] = None) -> list[ViolationEvent]:
        """Advance every rule to ``frame.timestamp``; returns the lifecycle events due now.  ``look(violation)``
        is the second look at the violation's crop in this frame (a verdict with ``agrees``)."""
        now = frame.timestamp
        seen_ids = {t.track_id for t in frame.seen}
        for track in frame.seen:
            for scenario in self.scenarios:
                if track.class_name in self.classes_of(scenario):
                    self._observe(scenario, track, frame, seen_ids)
        by_id = {s.id: s for s in self.scenarios}
        for sighting in frame.scenes:
            if sighting.scenario_id in by_id:
                self._observe_scene(by_id[sighting.scenario_id], sighting, now)
        events: list[ViolationEvent] = []
        for key, violation in list(self._open.items()):
            if now - violation.last_true >= self.lost_after_s:
                del self._open[key]
                if violation.started:
                    events.append(self._event("end", violation, now, violation.last_true))
            elif violation.last_true == now:
                events.extend(self._due(violation, now, look))
        return events

    def active(self) -> list[str]:
        """``scenario/zone_id`` of every started violation still present, sorted, no duplicates."""
        return sorted({v.active_key for v in self._open.values() if v.started})

    def open_violations(self) -> list[Violation]:
        return [v for v in self._open.values() if v.started]

    def pending(self) -> list[Violation]:
        """Every open violation, started or still counting its dwell."""
        return list(self._open.values())

    def holding(self, now: float) -> list[Violation]:
        """Open violations whose condition holds at ``now`` (object seen in its zone): their dwell counts."""
        return [v for v in self._open.values() if v.last_true == now]

    # ------------------------------------------------------------------ internals
    def _observe(self, scenario: Scenario, track: Track, frame: Frame, seen_ids: set[int]) -> None:
        key = (scenario.id, track.track_id)
        violation = self._open.get(key) or self._orphan_at(scenario, track, frame, seen_ids)
        zone_id = self._zone_of(scenario, track, violation)
        # a box the second look will judge needs only the detector's own confidence: the look guards its start
        sure = track.confidence >= scenario.confidence or self.needs_look(scenario, track.class_name)
        if zone_id is None or not sure or not self._companions_ok(scenario, track, frame):
            return
        if (scenario.id, zone_id) in self.scene_owned:
            return  # the zone's state classifier decides this scenario here
        now = frame.timestamp
        if violation is None:
            self._open[key] = Violation(self.camera_id, scenario, track, zone_id, now, track.xyxy, now,
                                        xyxy=track.xyxy, confidence=track.confidence)
            return
        if violation.track.track_id != track.track_id:  # the same object, tracked again
            # already re-keyed when the new track took it over but stood off its spot (the return below)
            self._open.pop((scenario.id, violation.track.track_id), None)
            self._open[key] = violation
        if scenario.rule != "unaccompanied" and \
                displacement(violation.anchor, track.xyxy, frame.shape) > scenario.max_displacement:
            if violation.started:
                if iou(violation.anchor, track.xyxy) < self.objects.same_spot_iou:
                    return  # it moved away: no longer the parked object; ends after lost_after_s
            else:
                violation.since, violation.anchor, violation.zone_id = now, track.xyxy, zone_id
        violation.track, violation.last_true = track, now
        violation.xyxy, violation.confidence = track.xyxy, max(violation.confidence, track.confidence)
        if violation.part_of is not None:
            violation.part_of.last_true = now  # one of its props is still there

    def _observe_scene(self, scenario: Scenario, sighting: Any, now: float) -> None:
        """A zone whose state is "present": the same object while the state lasts (no displacement, no companions)."""
        track = sighting.track
        key = (scenario.id, track.track_id)
        violation = self._open.get(key)
        if violation is None:
            violation = self._open[key] = Violation(self.camera_id, scenario, track, sighting.zone_id, now, track.xyxy,
                                                    now, xyxy=track.xyxy, confidence=track.confidence)
        violation.model_hash = sighting.model_hash
        violation.last_true, violation.confidence = now, max(violation.confidence, track.confidence)

    def _orphan_at(self, scenario: Scenario, track: Track, frame: Frame, seen_ids: set[int]) -> Optional[Violation]:
        """An open violation of this scenario whose object's track is not seen now, on the spot where this
        track stands, of its class group: the nearest, or None."""
        group = self.groups.group_of(track.class_name)
        orphans = [v for (scenario_id, _), v in self._open.items()
                   if scenario_id == scenario.id and v.track.track_id not in seen_ids
                   and self.groups.group_of(v.track.class_name) == group and self._same_spot(v, track, frame)]
        return min(orphans, key=lambda v: displacement(v.xyxy, track.xyxy, frame.shape), default=None)

    def _same_spot(self, violation: Violation, track: Track, frame: Frame) -> bool:
        return displacement(violation.xyxy, track.xyxy, frame.shape) <= violation.scenario.max_displacement \
            or iou(violation.xyxy, track.xyxy) >= self.objects.same_spot_iou

    def _zone_of(self, scenario: Scenario, track: Track, violation: Optional[Violation]) -> Optional[str]:
        if not scenario.zone_kinds:
            return ANYWHERE
        point = bottom_centre(track.xyxy)
        if violation is not None:
            sticky = next((z for z in self.zones if z.id == violation.zone_id), None)
            if sticky is not None and sticky.contains(point):
                return sticky.id
        zone = next((z for z in self.zones if z.kind in scenario.zone_kinds and z.contains(point)), None)
        return zone.id if zone else None

    def _companions_ok(self, scenario: Scenario, track: Track, frame: Frame) -> bool:
        if scenario.rule not in ("unaccompanied", "with_person"):
            return True
        company = any(other.class_name in scenario.companion_classes and other.track_id != track.track_id
                      and near(track.xyxy, other.xyxy, scenario.companion_distance, frame.shape)
                      for other in frame.alive)
        return company if scenario.rule == "with_person" else not company

    def _due(self, violation: Violation, now: float,
             look: Optional[Callable[[Violation], Any]] = None) -> list[ViolationEvent]:
        dwell = now - violation.since
        if violation.part_of is not None and violation.part_of not in self._open.values():
            violation.part_of = None  # its violation ended (every prop of it gone): this one stands alone
        if not violation.started:
            if violation.part_of is not None or (dwell >= violation.scenario.dwell_s and self._joined(violation)):
                return []
            if dwell >= violation.scenario.dwell_s and not self._declined(violation, now, look):
                violation.started_at = violation.last_event_at = now
                return [self._event("start", violation, now, now)]
            return []
        if now - (violation.last_event_at or now) >= self.update_interval_s:
            violation.last_event_at = now
            return [self._event("update", violation, now, now)]
        return []

    def _joined(self, violation: Violation) -> bool:
        """A prop next to a started violation of its scenario in its zone joins it (``with_person``)."""
        if violation.scenario.rule != "with_person":
            return False
        violation.part_of = next((v for v in self._open.values() if v is not violation and v.started
                                  and v.part_of is None and v.scenario.id == violation.scenario.id
                                  and v.zone_id == violation.zone_id and touching(v.xyxy, violation.xyxy)), None)
        return violation.part_of is not None

    def _declined(self, violation: Violation, now: float, look: Optional[Callable[[Violation], Any]]) -> bool:
        """The second look, when the scenario wants one for this class, does not (yet) agree; a zone state's
        violation (its head decided it) needs none."""
        scenario = violation.scenario
        if violation.model_hash or not self.needs_look(scenario, violation.track.class_name):
            return False
        if look is None or now < violation.look_after:
            return True
        violation.verdict = look(violation)
        if violation.verdict.agrees:
            return False
        assert scenario.second_look is not None
        violation.look_after = now + scenario.second_look.retry_s
        return True

    @staticmethod
    def _event(kind: str, violation: Violation, now: float, until: float) -> ViolationEvent:
        return ViolationEvent(kind, violation, now, round(until - violation.since, 3), violation.xyxy,
                              violation.confidence)
