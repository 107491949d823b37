"""The event contract: every record that crosses Kafka, defined once.

The detector (producer side, kafka-python) and the stream app (Faust) both use
these classes, so a field renamed here is renamed everywhere.  Every record
carries ``schema_version``, an id and UTC ISO-8601 timestamps (``...Z``).

Example::

    >>> d = Detection(event_id=new_id(), kind="start", violation_id="cam-01/7/stray_dog",
    ...               camera_id="cam-01", scenario="stray_dog", zone_id="", object_class="dog",
    ...               track_id=7, confidence=0.81, bbox=[0.1, 0.2, 0.3, 0.5],
    ...               first_seen=utc_now(), observed_at=utc_now(), dwell_s=121.0)
    >>> Detection.from_json(d.to_json()) == d
    True
"""
from __future__ import annotations

import json
import typing
import uuid
from datetime import datetime, timezone
from typing import Any, List, Optional, Type, TypeVar

import faust

SCHEMA_VERSION = 1

R = TypeVar("R", bound="ContractRecord")


def utc_now() -> str:
    """Current time as UTC ISO-8601 with millisecond precision and a ``Z`` suffix."""
    return to_iso(datetime.now(timezone.utc))


def to_iso(moment: datetime | float) -> str:
    """A datetime (naive = UTC) or a POSIX timestamp as ``2026-11-21T01:40:11.505Z``."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Inverse of :func:`to_iso`; accepts any ISO-8601 string with an offset or ``Z``."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return parsed.astimezone(timezone.utc)


def to_epoch(text: str) -> float:
    return parse_iso(text).timestamp()


def new_id() -> str:
    return uuid.uuid4().hex


class ContractError(ValueError):
    """A message that does not fit the contract; the text names the field."""


class ContractRecord(faust.Record, abstract=True, serializer="json", include_metadata=False):
    """Base for every record on the bus: JSON without Faust metadata, validated types."""

    TIMESTAMP_FIELDS = ()  # plain attribute: an annotation would make it a field

    def to_json(self) -> bytes:
        return json.dumps(self.asdict_deep(), ensure_ascii=False, separators=(",", ":")).encode()

    def asdict_deep(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.to_representation(), default=_plain))

    @classmethod
    def from_json(cls: Type[R], payload: bytes | str) -> R:
        """Parse and validate one message; raises :class:`ContractError` naming what is wrong."""
        try:
            data = json.loads(payload, parse_constant=_not_json)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ContractError(f"not JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls: Type[R], data: Any) -> R:
        if not isinstance(data, dict):
            raise ContractError(f"expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ContractError(f"schema_version: unsupported {version!r} (this build reads {SCHEMA_VERSION})")
        fields = cls._options.fields
        for name, annotation in fields.items():
            if name in data:
                _check_type(f"{cls.__name__}.{name}", data[name], annotation)
            elif name not in cls._options.defaults:
                raise ContractError(f"{cls.__name__}.{name}: missing field")
        record = cls.from_data({k: v for k, v in data.items() if k in fields})
        for name in cls.TIMESTAMP_FIELDS:
            value = getattr(record, name)
            if value is not None:
                try:
                    parse_iso(value)
                except (TypeError, ValueError):
                    raise ContractError(f"{cls.__name__}.{name}: not a UTC ISO-8601 timestamp: {value!r}") from None
        return record


def _not_json(constant: str) -> Any:
    """``json.loads`` accepts NaN and Infinity; JSON (RFC 8259) does not, and neither does the contract."""
    raise ContractError(f"not JSON: {constant} is not a JSON number")


def _check_type(path: str, value: Any, annotation: Any) -> None:
    """Raise ContractError unless ``value`` (decoded JSON) fits ``annotation``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return
        annotation = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, List):
        if not isinstance(value, list):
            raise ContractError(f"{path}: expected a list, got {_json_type(value)}")
        for index, item in enumerate(value):
            _check_type(f"{path}[{index}]", item, args[0] if args else Any)
        return
    if isinstance(annotation, type) and issubclass(annotation, ContractRecord):
        if not isinstance(value, dict):
            raise ContractError(f"{path}: expected an object, got {_json_type(value)}")
        for name, sub in annotation._options.fields.items():
            if name in value:
                _check_type(f"{path}.{name}", value[name], sub)
            elif name not in annotation._options.defaults:
                raise ContractError(f"{path}.{name}: missing field")
        return
    accepted = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}.get(annotation)
    if accepted is None:
        return
    if isinstance(value, bool) and annotation is not bool or not isinstance(value, accepted):
        raise ContractError(f"{path}: expected {annotation.__name__}, got {_json_type(value)}")


def _json_type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, faust.Record):
        return value.to_representation()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class Evidence(ContractRecord, namespace="nonsite.Evidence"):
    """One evidence file in the evidence store, addressed by its sha256."""

    kind: str  # annotated | clean | first_seen | officer_photo
    sha256: str
    uri: str
    content_type: str = "image/jpeg"
    schema_version: int = SCHEMA_VERSION


class Detection(ContractRecord, namespace="nonsite.Detection"):
    """A violation's lifecycle as the detector sees it: ``start`` once, ``update`` while it lasts, ``end``."""

    TIMESTAMP_FIELDS = ("first_seen", "observed_at")
    KINDS = ("start", "update", "end")

    event_id: str
    kind: str
    violation_id: str
    camera_id: str
    scenario: str
    zone_id: str
    object_class: str
    track_id: int
    confidence: float
    bbox: List[float]  # normalised x1, y1, x2, y2
    first_seen: str
    observed_at: str
    dwell_s: float
    evidence: List[Evidence] = []
    plate: Optional[str] = None
    shop_id: Optional[str] = None
    schema_version: int = SCHEMA_VERSION


class CameraStatus(ContractRecord, namespace="nonsite.CameraStatus"):
    """Camera health plus what its latest inference saw: the stream app verifies disposal from ``active``."""

    TIMESTAMP_FIELDS = ("observed_at", "last_frame_at", "last_inference_at")
    STATES = ("online", "offline")

    event_id: str
    camera_id: str
    state: str
    observed_at: str
    last_frame_at: Optional[str] = None
    last_inference_at: Optional[str] = None
    active: List[str] = []  # "scenario/zone_id" of every violation present at last inference
    reason: str = ""
    schema_version: int = SCHEMA_VERSION


class Incident(ContractRecord, namespace="nonsite.Incident"):
    """One real-world violation (a case, 案件), merged from repeated detections."""

    TIMESTAMP_FIELDS = ("first_seen", "last_seen", "updated_at")

    incident_id: str
    camera_id: str
    scenario: str
    zone_id: str
    grid_id: str
    state: str
    first_seen: str
    last_seen: str
    updated_at: str
    detections: int = 1
    cameras: List[str] = []
    violation_ids: List[str] = []
    evidence: List[Evidence] = []
    lat: Optional[float] = None
    lon: Optional[float] = None
    address: str = ""
    priority: int = 3
    first_offence: bool = False
    prior_offences: int = 0
    recurrence_of: Optional[str] = None
    officer_id: Optional[str] = None
    task_id: Optional[str] = None
    deadline: Optional[str] = None
    reopen_count: int = 0
    schema_version: int = SCHEMA_VERSION


class Task(ContractRecord, namespace="nonsite.Task"):
    """A dispatch of one incident to one officer (派遣); a reassignment is a new task."""

    TIMESTAMP_FIELDS = ("assigned_at", "accept_by", "deadline")
    STATUSES = ("assigned", "accepted", "superseded", "done")

    task_id: str
    incident_id: str
    officer_id: str
    grid_id: str
    scenario: str
    assigned_at: str
    accept_by: str
    deadline: str
    status: str = "assigned"
    attempt: int = 1
    first_offence: bool = False
    note: str = ""
    schema_version: int = SCHEMA_VERSION


class Feedback(ContractRecord, namespace="nonsite.Feedback"):
    """An officer's (or operator's) action on a case: accept, arrive, resolve, reject, reassign."""

    TIMESTAMP_FIELDS = ("at",)
    ACTIONS = ("accept", "arrive", "resolve", "reject", "reassign")

    feedback_id: str
    incident_id: str
    action: str
    actor: str
    at: str
    task_id: Optional[str] = None
    reason: str = ""
    note: str = ""
    evidence: List[Evidence] = []
    target_officer: Optional[str] = None
    schema_version: int = SCHEMA_VERSION


class CaseEvent(ContractRecord, namespace="nonsite.CaseEvent"):
    """One line of the append-only audit log (执法全过程记录); replaying them rebuilds every case."""

    TIMESTAMP_FIELDS = ("at",)

    event_id: str
    incident_id: str
    seq: int
    at: str
    actor: str
    action: str
    from_state: Optional[str]
    to_state: Optional[str]
    applied: bool = True
    reason: str = ""
    evidence: List[str] = []  # sha256 of the evidence this step rests on
    task_id: Optional[str] = None
    officer_id: Optional[str] = None
    source: str = ""  # topic/partition/offset of the message that caused it
    schema_version: int = SCHEMA_VERSION


class Alert(ContractRecord, namespace="nonsite.Alert"):
    """Something the operations center must see now (live alert wall)."""

    TIMESTAMP_FIELDS = ("at",)
    SEVERITIES = ("info", "warning", "critical")

    alert_id: str
    kind: str  # new_incident | escalated | no_officer | camera_offline | camera_online | reopened | refused
    severity: str
    at: str
    message: str
    incident_id: Optional[str] = None
    camera_id: Optional[str] = None
    grid_id: Optional[str] = None
    schema_version: int = SCHEMA_VERSION


class DeadLetter(ContractRecord, namespace="nonsite.DeadLetter"):
    """A message no agent could use, kept with why and where it came from."""

    TIMESTAMP_FIELDS = ("at",)

    dead_letter_id: str
    topic: str
    partition: int
    offset: int
    reason: str
    at: str
    raw: str
    schema_version: int = SCHEMA_VERSION


CONTRACT: dict[str, type[ContractRecord]] = {
    "detection": Detection,
    "camera_status": CameraStatus,
    "incident": Incident,
    "task": Task,
    "feedback": Feedback,
    "case_event": CaseEvent,
    "alert": Alert,
    "dead_letter": DeadLetter,
}
