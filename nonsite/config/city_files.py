"""The city's own files: ``cameras.yaml`` (cameras and their zones), ``scenarios.yaml`` (what is a
violation) and ``grids.yaml`` (grids, teams, officers and their shifts, users)."""
from __future__ import annotations

from datetime import time as dtime
from typing import Annotated, Literal, Optional
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from nonsite.config.common import (DAYS, REVIEWED_ZONE_KINDS, FieldError, Identifier, ReviewMode, RuleKind, Strict,
                                   ZoneKind, no_duplicates)


# ---------------------------------------------------------------- cameras
class GeoPoint(Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Location(GeoPoint):
    address: str = ""


def normalised_polygon(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """At least 3 points, each inside the image in normalised coordinates; else one line saying what is wrong."""
    if len(points) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(points)}")
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"point ({x}, {y}) is outside the normalised image [0, 1]")
    return points


Polygon = Annotated[list[tuple[float, float]], AfterValidator(normalised_polygon)]

# what the detector reads as a live stream (detector/sources.py)
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "rtp", "udp", "tcp", "srt", "http", "https")


def live_stream_url(url: str) -> str:
    """A live stream's URL (a scheme the detector streams from, and a host); the error never shows the URL,
    which may hold a password."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in LIVE_SCHEMES or not parts.hostname:
        raise ValueError(f"must be a live stream URL with a host, such as rtsp://camera/sub "
                         f"(schemes: {', '.join(LIVE_SCHEMES)}); got scheme '{parts.scheme}'")
    return url


class Zone(Strict):
    id: Identifier
    kind: ZoneKind
    polygon: Polygon
    anchor: Optional[GeoPoint] = None  # where the zone is on the map; defaults to the camera


class PrivacyZone(Strict):
    """A part of the view nobody may see (the windows of homes): blacked out on every frame (docs/privacy.md)."""

    polygon: Polygon
    name: str = ""


class Camera(Strict):
    id: Identifier
    name: str
    source: str
    # the camera's second, smaller stream of the same view: read instead of source (docs/cameras.md)
    substream_url: Optional[Annotated[str, AfterValidator(live_stream_url)]] = None
    location: Location
    grid: Identifier
    sample_interval_s: float = Field(default=1.0, gt=0)
    zones: list[Zone] = []
    privacy_zones: list[PrivacyZone] = []
    enabled: bool = True

    @model_validator(mode="after")
    def _unique_zone_ids(self) -> "Camera":
        no_duplicates([z.id for z in self.zones], "zones", "zone id")
        if self.substream_url is not None and self.substream_url == self.source:
            raise FieldError("substream_url", "is the same as source: leave it out, or give the smaller stream")
        return self

    def zone(self, zone_id: str) -> Optional[Zone]:
        return next((z for z in self.zones if z.id == zone_id), None)

    def anchor(self, zone_id: str) -> GeoPoint:
        zone = self.zone(zone_id)
        return zone.anchor if zone and zone.anchor else GeoPoint(lat=self.location.lat, lon=self.location.lon)


class CamerasFile(Strict):
    cameras: list[Camera]

    @model_validator(mode="after")
    def _unique_ids(self) -> "CamerasFile":
        no_duplicates([c.id for c in self.cameras], "cameras", "camera id")
        return self


# ---------------------------------------------------------------- scenarios
class SecondLookRule(Strict):
    """What the ImageNet classifier's look at a candidate's crop does for a scenario (docs/detector.md)."""

    mode: Literal["confirm", "rescue", "off"] = "off"
    # ImageNet class names (any name of a line of the labels file) or ranges of ImageNet-1k indices ("151-268")
    labels: list[str] = Field(default=[], max_length=1000)
    min_score: float = Field(default=0.2, gt=0, le=1)  # the labels' probabilities, summed, for the look to agree
    rescue_classes: list[str] = []  # rescue: boxes of these model classes are candidates when the look agrees
    retry_s: float = Field(default=30.0, gt=0)  # a candidate the look declined is looked at again this much later

    @model_validator(mode="after")
    def _labels_where_needed(self) -> "SecondLookRule":
        if self.mode != "off" and not self.labels:
            raise FieldError("labels", f"mode '{self.mode}' needs at least one ImageNet label")
        if self.mode == "rescue" and not self.rescue_classes:
            raise FieldError("rescue_classes", "mode 'rescue' needs the model classes it rescues")
        if self.mode != "rescue" and self.rescue_classes:
            raise FieldError("rescue_classes", f"only mode 'rescue' rescues classes (mode is '{self.mode}')")
        return self


class SceneRule(Strict):
    """The zone-state classifier of a scenario's zones (present or absent, docs/detector.md)."""

    enabled: bool = False
    threshold: float = Field(default=0.5, gt=0, lt=1)  # the head's probability for "present"


class Scenario(Strict):
    id: Identifier
    label_zh: str
    label_en: str
    code: str = ""  # CJ/T 214 style event code, city-specific
    rule: RuleKind = "dwell"
    classes: list[str] = Field(min_length=1)
    zone_kinds: list[ZoneKind] = []  # empty: anywhere in the frame
    dwell_s: float = Field(default=120.0, ge=0)
    confidence: float = Field(default=0.4, gt=0, le=1)
    max_displacement: float = Field(default=0.05, gt=0, le=1)  # of the frame diagonal
    companion_classes: list[str] = []  # unaccompanied: who must be absent; with_person: who must be present
    companion_distance: float = Field(default=3.0, gt=0)  # in multiples of the object's size
    sla_minutes: int = Field(default=60, gt=0)
    priority: int = Field(default=3, ge=1, le=5)
    enabled: bool = True
    second_look: Optional[SecondLookRule] = None
    scene: Optional[SceneRule] = None
    # operator: an alarm waits on the wall (待审核) until an operator confirms or dismisses it; None: the default
    review: Optional[ReviewMode] = None

    @property
    def review_mode(self) -> ReviewMode:
        """``review``, else operator for the scenarios of scene-classifier zones, auto for the others.

        >>> Scenario(id="x", label_zh="x", label_en="x", classes=["pile"], zone_kinds=["no_piling"]).review_mode
        'operator'
        """
        if self.review is not None:
            return self.review
        return "operator" if REVIEWED_ZONE_KINDS & set(self.zone_kinds) else "auto"

    @model_validator(mode="after")
    def _companions_where_needed(self) -> "Scenario":
        if self.rule in ("unaccompanied", "with_person") and not self.companion_classes:
            raise ValueError(f"rule '{self.rule}' needs companion_classes")
        if self.scene is not None and self.scene.enabled and not self.zone_kinds:
            raise FieldError("scene.enabled", "a scene classifier watches zones: the scenario needs zone_kinds")
        if self.second_look is not None and set(self.second_look.rescue_classes) & set(self.classes):
            raise FieldError("second_look.rescue_classes", "a class of the scenario's own is no rescue")
        return self


class ScenariosFile(Strict):
    scenarios: list[Scenario]

    @model_validator(mode="after")
    def _unique_ids(self) -> "ScenariosFile":
        no_duplicates([s.id for s in self.scenarios], "scenarios", "scenario id")
        return self


# ---------------------------------------------------------------- grids, teams, people
class Shift(Strict):
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = list(DAYS)
    start: dtime
    end: dtime  # an end before the start runs past midnight

    def covers(self, weekday: int, clock: dtime) -> bool:
        """``weekday`` 0 = Monday, as ``datetime.weekday()``."""
        day = DAYS[weekday]
        if self.start == self.end:  # around the clock
            return day in self.days
        if self.start < self.end:
            return day in self.days and self.start <= clock < self.end
        yesterday = DAYS[(weekday - 1) % 7]
        return (day in self.days and clock >= self.start) or (yesterday in self.days and clock < self.end)


class Credentials(Strict):
    username: str = Field(min_length=1)
    password_hash: str = Field(pattern=r"^pbkdf2_sha256\$\d+\$[0-9a-f]+\$[0-9a-f]+$")


class Officer(Strict):
    id: Identifier
    name: str
    grid: Identifier
    phone: str = ""
    shifts: list[Shift] = []
    credentials: Optional[Credentials] = None


class User(Strict):
    id: Identifier
    name: str
    role: Literal["operator", "supervisor"]
    credentials: Credentials


class Team(Strict):
    id: Identifier
    name: str


class Grid(Strict):
    id: Identifier
    name: str
    team: Identifier


class GridsFile(Strict):
    teams: list[Team]
    grids: list[Grid]
    officers: list[Officer]
    users: list[User] = []

    @model_validator(mode="after")
    def _consistent(self) -> "GridsFile":
        no_duplicates([t.id for t in self.teams], "teams", "team id")
        no_duplicates([g.id for g in self.grids], "grids", "grid id")
        no_duplicates([o.id for o in self.officers] + [u.id for u in self.users], "officers", "person id")
        names = [o.credentials.username for o in self.officers if o.credentials]
        no_duplicates(names + [u.credentials.username for u in self.users], "officers", "username",
                       "credentials.username")
        teams = {t.id for t in self.teams}
        for index, grid in enumerate(self.grids):
            if grid.team not in teams:
                raise FieldError(f"grids[{index}].team", f"unknown team '{grid.team}'")
        grids = {g.id for g in self.grids}
        for index, officer in enumerate(self.officers):
            if officer.grid not in grids:
                raise FieldError(f"officers[{index}].grid", f"unknown grid '{officer.grid}'")
        return self
