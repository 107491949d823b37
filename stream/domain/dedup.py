"""Which incident a detection belongs to: pure functions over the city map and the case state.

* same camera, scenario and zone while a case there is open -> that case;
* another camera whose zone anchor lies within ``cross_camera_radius_m``, same scenario, and the
  detection starts before that case was last seen plus ``dedup_window_s`` -> that case;
* a site whose last case was rejected as a false alarm less than ``dedup_window_s`` ago -> absorbed;
* otherwise a new incident, a recurrence (回潮) of the site's last case when that one was closed.

Sites near each other and all sites of one grid form a *district*: every message about a district
goes to one partition of the internal cases topic, so one worker sees everything dedup and dispatch
need (the neighbours of a site and the officers of its grid) without cross-partition lookups.

Example::

    >>> metres_between(30.6512, 104.0665, 30.6512, 104.0666) < 10
    True
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

from nonsite.config import City

EARTH_RADIUS_M = 6_371_008.8


def metres_between(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def site_key(scenario: str, camera_id: str, zone_id: str) -> str:
    return f"{scenario}|{camera_id}|{zone_id}"


def spot(camera_id: str, zone_id: str) -> str:
    """A place one camera watches: ``camera/zone`` (zone may be empty: the whole frame)."""
    return f"{camera_id}/{zone_id}"


@dataclass(frozen=True)
class CityMap:
    """Static geography derived from the config: districts and cross-camera neighbours."""

    district_of_camera: dict[str, str]
    neighbours: dict[str, tuple[str, ...]]  # spot -> spots of other cameras within the radius
    districts: tuple[str, ...]
    scenarios: frozenset[str] = frozenset()  # the scenario ids of the city

    @classmethod
    def build(cls, city: City) -> "CityMap":
        radius = city.stream.cross_camera_radius_m
        spots: dict[str, tuple[str, float, float]] = {}
        for camera in city.cameras:
            for zone_id in [""] + [z.id for z in camera.zones]:
                anchor = camera.anchor(zone_id)
                spots[spot(camera.id, zone_id)] = (camera.id, anchor.lat, anchor.lon)
        parent = {c.id: c.id for c in city.cameras}
        parent.update({f"grid:{g.id}": f"grid:{g.id}" for g in city.grids})

        def root(node: str) -> str:
            while parent[node] != node:
                parent[node] = parent[parent[node]]
                node = parent[node]
            return node

        def union(a: str, b: str) -> None:
            parent[root(a)] = root(b)

        for camera in city.cameras:
            union(camera.id, f"grid:{camera.grid}")
        neighbours: dict[str, list[str]] = {name: [] for name in spots}
        names = sorted(spots)
        for i, a in enumerate(names):
            cam_a, lat_a, lon_a = spots[a]
            for b in names[i + 1:]:
                cam_b, lat_b, lon_b = spots[b]
                if cam_a != cam_b and metres_between(lat_a, lon_a, lat_b, lon_b) <= radius:
                    neighbours[a].append(b)
                    neighbours[b].append(a)
                    union(cam_a, cam_b)
        grids_of_root: dict[str, set[str]] = {}
        for camera in city.cameras:
            grids_of_root.setdefault(root(camera.id), set()).add(camera.grid)
        district_of_camera = {c.id: "+".join(sorted(grids_of_root[root(c.id)])) for c in city.cameras}
        return cls(district_of_camera=district_of_camera,
                   neighbours={k: tuple(v) for k, v in neighbours.items()},
                   districts=tuple(sorted(set(district_of_camera.values()))),
                   scenarios=frozenset(s.id for s in city.scenarios))


def district_of_incident(incident_id: str) -> str:
    """Incident ids are ``<district>.<hash>``; feedback is routed by this prefix."""
    return incident_id.rsplit(".", 1)[0] if "." in incident_id else ""


@dataclass(frozen=True)
class SiteCase:
    """The little dedup needs to know about a case found at a site."""

    incident_id: str
    scenario: str
    is_open: bool
    state: Optional[str]
    last_seen: float
    closed: bool  # verified closed (a later violation is a recurrence)


@dataclass(frozen=True)
class Match:
    incident_id: Optional[str]  # join this case; None: open a new one
    recurrence_of: Optional[str] = None
    reason: str = ""


def match_detection(scenario: str, camera_id: str, zone_id: str, first_seen: float, observed_at: float,
                    city_map: CityMap, case_at: Callable[[str], Optional[SiteCase]],
                    window_s: float) -> Match:
    """Decide where a detection goes. ``case_at(site_key)`` returns the last case filed at a site."""
    own = case_at(site_key(scenario, camera_id, zone_id))
    if own is not None and own.is_open:
        return Match(own.incident_id, reason="open case at this site")
    for other in city_map.neighbours.get(spot(camera_id, zone_id), ()):
        other_camera, other_zone = other.split("/", 1)
        near = case_at(site_key(scenario, other_camera, other_zone))
        if near is not None and near.is_open and first_seen <= near.last_seen + window_s:
            return Match(near.incident_id, reason=f"same spot seen by {other_camera}")
    if own is not None and not own.closed and observed_at - own.last_seen <= window_s:
        return Match(own.incident_id, reason=f"within {window_s:.0f}s of a {own.state} case")
    if own is not None and own.closed:
        return Match(None, recurrence_of=own.incident_id, reason="recurrence after closure")
    return Match(None, reason="new violation")
