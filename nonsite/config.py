"""City configuration: YAML files in one folder, validated into typed models at start.

The folder holds ``nonsite.yaml`` (system: Kafka, detector, stream), ``cameras.yaml``,
``scenarios.yaml`` and ``grids.yaml`` (grids, teams, officers, users).  Any mistake is
reported as one line naming the file and the field path::

    configs/cameras.yaml: cameras[1].zones[0].polygon: a polygon needs at least 3 points, got 2

String values may use ``${VAR}`` or ``${VAR:-default}``; the environment variables
``NONSITE_KAFKA_BOOTSTRAP`` and ``NONSITE_WEIGHTS`` override the file.

Example::

    >>> city = load_city("configs")
    >>> city.camera("cam-01").grid
    'G01'
"""
from __future__ import annotations

import os
import re
from datetime import time as dtime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ZONE_KINDS = ("sidewalk", "no_vending", "storefront", "no_piling", "road", "no_drying", "no_ads", "plaza")
ZoneKind = Literal["sidewalk", "no_vending", "storefront", "no_piling", "road", "no_drying", "no_ads", "plaza"]
RuleKind = Literal["dwell", "unaccompanied", "with_person", "static_foreground"]
Role = Literal["operator", "officer", "supervisor"]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

FILES = {"system": "nonsite.yaml", "cameras": "cameras.yaml", "scenarios": "scenarios.yaml",
         "grids": "grids.yaml"}


class ConfigError(Exception):
    """A configuration mistake; ``str()`` is the one line shown to the user."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- cameras
class GeoPoint(Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Location(GeoPoint):
    address: str = ""


class Zone(Strict):
    id: Identifier
    kind: ZoneKind
    polygon: list[tuple[float, float]]
    anchor: Optional[GeoPoint] = None  # where the zone is on the map; defaults to the camera

    @field_validator("polygon")
    @classmethod
    def _polygon_is_normalised(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(points) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(points)}")
        for x, y in points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point ({x}, {y}) is outside the normalised image [0, 1]")
        return points


class Camera(Strict):
    id: Identifier
    name: str
    source: str
    location: Location
    grid: Identifier
    sample_interval_s: float = Field(default=1.0, gt=0)
    zones: list[Zone] = []
    enabled: bool = True

    @model_validator(mode="after")
    def _unique_zone_ids(self) -> "Camera":
        _no_duplicates([z.id for z in self.zones], "zones", "zone id")
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
        _no_duplicates([c.id for c in self.cameras], "cameras", "camera id")
        return self


# ---------------------------------------------------------------- scenarios
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

    @model_validator(mode="after")
    def _companions_where_needed(self) -> "Scenario":
        if self.rule in ("unaccompanied", "with_person") and not self.companion_classes:
            raise ValueError(f"rule '{self.rule}' needs companion_classes")
        return self


class ScenariosFile(Strict):
    scenarios: list[Scenario]

    @model_validator(mode="after")
    def _unique_ids(self) -> "ScenariosFile":
        _no_duplicates([s.id for s in self.scenarios], "scenarios", "scenario id")
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
        _no_duplicates([t.id for t in self.teams], "teams", "team id")
        _no_duplicates([g.id for g in self.grids], "grids", "grid id")
        _no_duplicates([o.id for o in self.officers] + [u.id for u in self.users], "officers", "person id")
        names = [o.credentials.username for o in self.officers if o.credentials]
        _no_duplicates(names + [u.credentials.username for u in self.users], "officers", "username",
                       "credentials.username")
        teams = {t.id for t in self.teams}
        for index, grid in enumerate(self.grids):
            if grid.team not in teams:
                raise _FieldError(f"grids[{index}].team", f"unknown team '{grid.team}'")
        grids = {g.id for g in self.grids}
        for index, officer in enumerate(self.officers):
            if officer.grid not in grids:
                raise _FieldError(f"officers[{index}].grid", f"unknown grid '{officer.grid}'")
        return self


# ---------------------------------------------------------------- system
class Topics(Strict):
    detections: str = "nonsite.detections"
    camera_status: str = "nonsite.camera-status"
    incidents: str = "nonsite.incidents"
    tasks: str = "nonsite.tasks"
    feedback: str = "nonsite.feedback"
    case_events: str = "nonsite.case-events"
    alerts: str = "nonsite.alerts"
    dead_letter: str = "nonsite.dead-letter"

    def all(self) -> dict[str, str]:
        return self.model_dump()


class KafkaSettings(Strict):
    bootstrap: str = "localhost:9092"
    topics: Topics = Topics()
    partitions: int = Field(default=4, ge=1)
    # "auto": min(3, brokers of the cluster); a number is honoured, refused when above the broker count.
    # min.insync.replicas follows: 2 with 3 replicas, 1 below (nonsite.kafka_local.Replication)
    replication_factor: Union[Literal["auto"], int] = "auto"

    @field_validator("replication_factor", mode="before")
    @classmethod
    def _auto_or_count(cls, value: Any) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError(f"must be auto or a number of replicas (1 or more), got {value!r}")


class MotionSettings(Strict):
    enabled: bool = True
    downscale_width: int = Field(default=160, ge=16)
    pixel_threshold: int = Field(default=25, ge=1, le=255)
    min_changed_fraction: float = Field(default=0.002, ge=0, le=1)
    recheck_s: float = Field(default=10.0, gt=0)  # infer at least this often even without motion


class DetectorSettings(Strict):
    weights: str = "yolov8n.pt"
    imgsz: int = Field(default=640, ge=32)
    device: str = "cpu"
    batch: int = Field(default=8, ge=1)
    workers: int = Field(default=1, ge=1, le=64)  # model instances inferring in parallel threads (CPU cores)
    tracker: str = "bytetrack.yaml"
    min_confidence: float = Field(default=0.25, gt=0, le=1)
    motion: MotionSettings = MotionSettings()
    lost_after_s: float = Field(default=10.0, gt=0)  # a track unseen this long has ended
    update_interval_s: float = Field(default=60.0, gt=0)
    status_interval_s: float = Field(default=30.0, gt=0)
    evidence_dir: str = "var/evidence"
    spool_dir: str = "var/spool"
    spool_max_mb: float = Field(default=256, gt=0)
    metrics_port: int = Field(default=9101, ge=0, le=65535)


class StreamSettings(Strict):
    app_id: str = "nonsite"
    dedup_window_s: float = Field(default=600, gt=0)
    cross_camera_radius_m: float = Field(default=30, ge=0)
    acceptance_minutes: float = Field(default=15, gt=0)
    verify_grace_s: float = Field(default=60, ge=0)
    first_offence_window_days: int = Field(default=365, gt=0)
    retention_days: float = Field(default=90, gt=0)  # closed and rejected cases stay in the worker's state
    tick_s: float = Field(default=5, gt=0)
    web_port: int = Field(default=6066, ge=1, le=65535)
    data_dir: str = "var/worker"
    store: Literal["memory://", "rocksdb://"] = "memory://"  # table store; changelogs in Kafka either way
    commit_interval_s: float = Field(default=2.8, gt=0)  # how often the worker commits consumer offsets


class WebSettings(Strict):
    """The operator surfaces (``nonsite web``): alert wall, officer app, supervisor reports."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    token_ttl_minutes: float = Field(default=720, gt=0)
    upload_max_mb: float = Field(default=8, gt=0)
    upload_types: list[str] = Field(default=["image/jpeg", "image/png", "image/webp"], min_length=1)
    min_sample_for_ranking: int = Field(default=10, ge=1)


class CitySettings(Strict):
    name: str = "Sample City"
    name_zh: str = ""
    timezone: str = "Asia/Shanghai"


class SystemFile(Strict):
    city: CitySettings = CitySettings()
    kafka: KafkaSettings = KafkaSettings()
    detector: DetectorSettings = DetectorSettings()
    stream: StreamSettings = StreamSettings()
    web: WebSettings = WebSettings()


# ---------------------------------------------------------------- the whole city
class City(BaseModel):
    """Everything one deployment knows, cross-checked across files."""

    model_config = ConfigDict(frozen=True)

    root: Path
    system: SystemFile
    cameras: list[Camera]
    scenarios: list[Scenario]
    teams: list[Team]
    grids: list[Grid]
    officers: list[Officer]
    users: list[User]

    @property
    def kafka(self) -> KafkaSettings:
        return self.system.kafka

    @property
    def detector(self) -> DetectorSettings:
        return self.system.detector

    @property
    def stream(self) -> StreamSettings:
        return self.system.stream

    @property
    def web(self) -> WebSettings:
        return self.system.web

    @cached_property
    def cameras_by_id(self) -> dict[str, Camera]:
        return {c.id: c for c in self.cameras}

    @cached_property
    def scenarios_by_id(self) -> dict[str, Scenario]:
        return {s.id: s for s in self.scenarios}

    def camera(self, camera_id: str) -> Optional[Camera]:
        return self.cameras_by_id.get(camera_id)

    def scenario(self, scenario_id: str) -> Optional[Scenario]:
        return self.scenarios_by_id.get(scenario_id)

    def officers_of(self, grid_id: str) -> list[Officer]:
        return [o for o in self.officers if o.grid == grid_id]

    def resolve_path(self, path: str) -> Path:
        """A path from the config: absolute as is, relative to the folder's parent (the project)."""
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.root.parent / candidate


class _FieldError(ValueError):
    """Raised inside validators to point at a field path other than the validator's own."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path, self.message = path, message


def _no_duplicates(values: list[str], path: str, what: str, field: str = "id") -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise _FieldError(f"{path}[{index}].{field}", f"duplicate {what} '{value}'")
        seen.add(value)


_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(node: Any, path: str, filename: str) -> Any:
    if isinstance(node, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else str(k), filename) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, f"{path}[{i}]", filename) for i, v in enumerate(node)]
    if isinstance(node, str):
        def substitute(match: re.Match[str]) -> str:
            value = os.environ.get(match.group(1), match.group(2))
            if value is None:
                raise ConfigError(f"{filename}: {path}: environment variable {match.group(1)} is not set")
            return value
        return _ENV_PATTERN.sub(substitute, node)
    return node


def _location(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and not part.startswith(("function-", "value_error")):
            path += f".{part}" if path else part
    return path or "(top level)"


def _read_model(folder: Path, key: str, model: type[BaseModel], required: bool = True) -> BaseModel:
    file = folder / FILES[key]
    shown = str(file)
    if not file.exists():
        if required:
            raise ConfigError(f"{shown}: file not found")
        return model()
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise ConfigError(f"{shown}: {where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    raw = _expand_env(raw if raw is not None else {}, "", shown)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_one_line(shown, exc)) from None


def _one_line(shown: str, exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    original = (error.get("ctx") or {}).get("error")
    if isinstance(original, _FieldError):
        prefix = _location(error["loc"])
        path = original.path if prefix == "(top level)" else f"{prefix}.{original.path}"
        return f"{shown}: {path}: {original.message}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] == "literal_error":
        message = f"{message}, got {error.get('input')!r}"
    return f"{shown}: {_location(error['loc'])}: {message}"


def _apply_env_overrides(system: SystemFile) -> SystemFile:
    bootstrap = os.environ.get("NONSITE_KAFKA_BOOTSTRAP")
    weights = os.environ.get("NONSITE_WEIGHTS")
    if bootstrap:
        system = system.model_copy(update={"kafka": system.kafka.model_copy(update={"bootstrap": bootstrap})})
    if weights:
        system = system.model_copy(update={"detector": system.detector.model_copy(update={"weights": weights})})
    return system


def _cross_check(folder: Path, cameras: CamerasFile, scenarios: ScenariosFile, grids: GridsFile) -> None:
    grid_ids = {g.id for g in grids.grids}
    for index, camera in enumerate(cameras.cameras):
        if camera.grid not in grid_ids:
            raise ConfigError(f"{folder / FILES['cameras']}: cameras[{index}].grid: unknown grid '{camera.grid}' "
                              f"(not in {FILES['grids']})")
    zone_kinds = {z.kind for c in cameras.cameras for z in c.zones}
    for index, scenario in enumerate(scenarios.scenarios):
        for kind_index, kind in enumerate(scenario.zone_kinds):
            if scenario.enabled and kind not in zone_kinds:
                raise ConfigError(f"{folder / FILES['scenarios']}: scenarios[{index}].zone_kinds[{kind_index}]: "
                                  f"no camera has a zone of kind '{kind}'")


def default_config_dir() -> Path:
    return Path(os.environ.get("NONSITE_CONFIG", "configs"))


def load_city(folder: str | Path | None = None) -> City:
    """Read and cross-check the whole configuration folder; raises :class:`ConfigError`."""
    root = Path(folder) if folder is not None else default_config_dir()
    if not root.is_dir():
        raise ConfigError(f"{root}: configuration folder not found (set --config or NONSITE_CONFIG)")
    system = _apply_env_overrides(_read_model(root, "system", SystemFile, required=False))
    cameras = _read_model(root, "cameras", CamerasFile)
    scenarios = _read_model(root, "scenarios", ScenariosFile)
    grids = _read_model(root, "grids", GridsFile)
    _cross_check(root, cameras, scenarios, grids)
    return City(root=root.resolve(), system=system, cameras=cameras.cameras, scenarios=scenarios.scenarios,
                teams=grids.teams, grids=grids.grids, officers=grids.officers, users=grids.users)
