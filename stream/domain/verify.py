"""The camera verifies (非现场核查), pure: presence of a case's violation per watched spot.

A case remembers, for every ``camera/zone`` spot it was seen at, whether the violation is present
and which detector violation ids are active there.  Detection ``start``/``update`` mark it present,
``end`` removes that violation id, and a :class:`~contract.CameraStatus` (the camera's last
inference) sets it from its ``active`` list — so periodic re-checks verify without new detections.

Example::

    >>> p = Presence()
    >>> p = observe_detection(p, "cam-01/z", "v1", "start", 100.0)
    >>> p.present, observe_detection(p, "cam-01/z", "v1", "end", 130.0).absent_since
    (True, 130.0)
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Optional

import msgspec

REOPEN, VERIFY, SELF_CORRECT = "reopen", "verify", "self_correct"
EMPTY: Mapping[str, None] = MappingProxyType({})


# Spot and Presence are frozen msgspec Structs rather than frozen dataclasses: every detection makes a new
# one of each, and a frozen dataclass is built ten times slower (its __init__ goes through object.__setattr__).
class Spot(msgspec.Struct, frozen=True, gc=False):
    present: bool
    at: float  # when the camera last said so
    violations: Mapping[str, None] = EMPTY  # active violation ids, in arrival order (never changed in place)
    since: Optional[float] = None  # when ``present`` took its current value (None: at ``at``)

    @property
    def changed_at(self) -> float:
        return self.at if self.since is None else self.since


class Presence(msgspec.Struct, frozen=True, gc=False):
    spots: dict[str, Spot] = msgspec.field(default_factory=dict)
    last_present_at: Optional[float] = None
    last_observed_at: Optional[float] = None

    @property
    def present(self) -> bool:
        return any(s.present for s in self.spots.values())

    @property
    def absent_since(self) -> Optional[float]:
        if not self.spots or self.present:
            return None
        return max(s.changed_at for s in self.spots.values())  # repeated "still absent" does not move it

    def to_dict(self) -> dict:
        return {"spots": {k: [s.present, s.at, list(s.violations), s.changed_at] for k, s in self.spots.items()},
                "last_present_at": self.last_present_at, "last_observed_at": self.last_observed_at}

    @classmethod
    def from_dict(cls, data: dict) -> "Presence":
        spots = {k: Spot(bool(v[0]), float(v[1]), dict.fromkeys(v[2]), float(v[3]) if len(v) > 3 else None)
                 for k, v in data.get("spots", {}).items()}
        return cls(spots, data.get("last_present_at"), data.get("last_observed_at"))


def _with_spot(p: Presence, name: str, spot: Spot) -> Presence:
    old = p.spots.get(name)
    if old is not None and old.present == spot.present:
        spot = Spot(spot.present, spot.at, spot.violations, old.changed_at)
    spots = dict(p.spots)
    spots[name] = spot
    present_at = spot.at if spot.present else p.last_present_at
    if spot.present and p.last_present_at is not None:
        present_at = max(present_at, p.last_present_at)
    observed = spot.at if p.last_observed_at is None else max(p.last_observed_at, spot.at)
    return Presence(spots, present_at, observed)


def observe_detection(p: Presence, name: str, violation_id: str, kind: str, at: float) -> Presence:
    old = p.spots.get(name)
    if old is not None and at < old.at:  # out of order: an older observation changes nothing
        return p
    active = old.violations if old else EMPTY
    if kind == "end":
        if violation_id in active:
            active = {v: None for v in active if v != violation_id}
    elif violation_id not in active:
        active = {**active, violation_id: None}  # a new mapping: a Spot is never changed in place
    return _with_spot(p, name, Spot(bool(active), at, active))


def observe_camera(p: Presence, name: str, present: bool, at: float) -> Presence:
    """The camera's latest inference: ``present`` is whether ``scenario/zone`` is in its active list."""
    old = p.spots.get(name)
    if old is not None and at < old.at:
        return p
    violations = old.violations if (old and present) else EMPTY
    return _with_spot(p, name, Spot(present, at, violations))


def verdict(p: Presence, working_state: Optional[str], resolved_at: Optional[float], now: float,
            grace_s: float) -> Optional[str]:
    """What the camera says about the case now, or None while undecided.

    * RESOLVED and seen present at least ``grace_s`` after the resolution -> REOPEN (rework);
    * RESOLVED and absent, observed after the resolution, for ``grace_s`` -> VERIFY;
    * before the officer arrived and absent for ``grace_s`` -> SELF_CORRECT.
    """
    present = p.present
    if present and working_state != "RESOLVED":
        return None  # the common case for a detection: still there, nobody has resolved it yet
    absent_since = None if present else p.absent_since
    if working_state == "RESOLVED" and resolved_at is not None:
        if present and p.last_present_at is not None and p.last_present_at >= resolved_at + grace_s:
            return REOPEN
        if (absent_since is not None and p.last_observed_at is not None and p.last_observed_at >= resolved_at
                and now >= max(resolved_at, absent_since) + grace_s):
            return VERIFY
        return None
    if working_state in ("DETECTED", "DISPATCHED", "ACCEPTED", "REOPENED"):
        if absent_since is not None and now >= absent_since + grace_s:
            return SELF_CORRECT
    return None
