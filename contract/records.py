"""The event contract: every record that crosses Kafka, defined once, with its bounds.

The detector, the stream worker and the web app all use these classes, so a field renamed here is
renamed everywhere.  Every record carries ``schema_version``, an id and UTC ISO-8601 timestamps
(``...Z``).  Records are msgspec Structs: :func:`contract.validate.decode` parses and checks a
message in one pass and names the field of the first problem.

Example::

    >>> d = Detection(event_id=new_id(), kind="start", violation_id="cam-01/7/stray_dog",
    ...               camera_id="cam-01", scenario="stray_dog", zone_id="", object_class="dog",
    ...               track_id=7, confidence=0.81, bbox=[0.1, 0.2, 0.3, 0.5],
    ...               first_seen=utc_now(), observed_at=utc_now(), dwell_s=121.0)
    >>> Detection.from_json(d.to_json()) == d
    True
"""
from __future__ import annotations

from typing import Any, ClassVar, Optional, Type, TypeVar

import msgspec

from contract.clock import new_id, utc_now  # noqa: F401  (the docstring's example)
from contract.fields import (SCHEMA_VERSION, AlertKind, BBox, CameraState, CaseState, Count, DetectionKind,
                             EvidenceKind, FeedbackAction, Id, Latitude, Longitude, MaskedCopies, OptionalZoneId, Plate,
                             Priority, Probability, RawText, Seconds, Severity, Sha256, ShortText, TaskStatus, Text,
                             Timestamp, Uri)

R = TypeVar("R", bound="Record")
_encode = msgspec.json.Encoder().encode


class Record(msgspec.Struct, kw_only=True, gc=False, forbid_unknown_fields=True):
    """Base for every record on the bus.

    ``gc=False``: records hold only strings, numbers and lists of them, so they cannot form
    reference cycles, and the collector need not track the thousands a batch keeps alive.
    ``forbid_unknown_fields``: a message read as the record itself has no field the type does not nest, so
    it needs no nesting bound; one with unknown fields (a newer producer's) is read past them instead
    (:func:`contract.validate.decode`).
    """

    TIMESTAMP_FIELDS: ClassVar[tuple[str, ...]] = ()
    INPUT: ClassVar[bool] = False  # sent by detectors or people: decoded with the tight size bound

    def to_json(self) -> bytes:
        return _encode(self)

    def asdict_deep(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)

    @classmethod
    def from_json(cls: Type[R], payload: bytes | str) -> R:
        """Parse and validate one message; raises :class:`~contract.validate.ContractError` naming the field."""
        from contract.validate import decode

        return decode(cls, payload)

    @classmethod
    def from_dict(cls: Type[R], data: Any) -> R:
        """Validate decoded JSON data (a dict) as this record."""
        from contract.validate import convert

        return convert(cls, data)

    def check_rules(self) -> Optional[str]:
        """What is wrong with this record beyond its field types, or None (a record type adds its rules)."""
        return None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return cls.__struct_fields__

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The default of every field that has one (a fresh copy of mutable ones)."""
        return {f.name: (f.default_factory() if f.default_factory is not msgspec.NODEFAULT else f.default)
                for f in msgspec.structs.fields(cls)
                if f.default is not msgspec.NODEFAULT or f.default_factory is not msgspec.NODEFAULT}


class Evidence(Record):
    """One evidence file in the evidence store, addressed by its sha256.

    ``masked`` links the original to its masked copies in the same store (docs/privacy.md): variant -> the
    copy's sha256, the original's own when the variant had nothing to mask.  A variant left out has no copy
    (never masked, or it could not be made): nothing may be shown where that variant is needed.
    """

    kind: EvidenceKind
    sha256: Sha256
    uri: Uri
    content_type: ShortText = "image/jpeg"
    masked: MaskedCopies = msgspec.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION


class Classification(Record):
    """Which classifier decided a violation (docs/detector.md), so an alarm can be traced to a model version.

    ``model`` names the classifier and its hash (``second_look:ab12cd34ef56``, ``scene:0f1e2d3c4b5a``);
    ``label`` is what it said; ``score`` how sure it was, when it gives one."""

    model: ShortText
    label: ShortText
    score: Optional[Probability] = None


class Detection(Record):
    """A violation's lifecycle as the detector sees it: ``start`` once, ``update`` while it lasts, ``end``."""

    TIMESTAMP_FIELDS = ("first_seen", "observed_at")
    INPUT = True
    KINDS: ClassVar[tuple[str, ...]] = ("start", "update", "end")

    event_id: Id
    kind: DetectionKind
    violation_id: Id
    camera_id: Id
    scenario: Id
    zone_id: OptionalZoneId
    object_class: Id
    track_id: Count
    confidence: Probability
    bbox: BBox  # normalised x1, y1, x2, y2
    first_seen: Timestamp
    observed_at: Timestamp
    dwell_s: Seconds
    evidence: list[Evidence] = msgspec.field(default_factory=list)
    plate: Optional[Plate] = None
    shop_id: Optional[Id] = None
    classifier: Optional[Classification] = None  # the second look or zone-state classifier that decided it
    schema_version: int = SCHEMA_VERSION

    def check_rules(self) -> Optional[str]:
        x1, y1, x2, y2 = self.bbox
        if x1 > x2 or y1 > y2:
            return f"Detection.bbox: corners out of order (x1 <= x2 and y1 <= y2): {self.bbox}"
        return None


class CameraStatus(Record):
    """Camera health plus what its latest inference saw: the stream app verifies disposal from ``active``."""

    TIMESTAMP_FIELDS = ("observed_at", "last_frame_at", "last_inference_at")
    INPUT = True
    STATES: ClassVar[tuple[str, ...]] = ("online", "offline")

    event_id: Id
    camera_id: Id
    state: CameraState
    observed_at: Timestamp
    last_frame_at: Optional[Timestamp] = None
    last_inference_at: Optional[Timestamp] = None
    active: list[Id] = msgspec.field(default_factory=list)  # "scenario/zone_id" of every violation present
    reason: Text = ""
    schema_version: int = SCHEMA_VERSION


class Incident(Record):
    """One real-world violation (a case, 案件), merged from repeated detections."""

    TIMESTAMP_FIELDS = ("first_seen", "last_seen", "updated_at")

    incident_id: Id
    camera_id: Id
    scenario: Id
    zone_id: OptionalZoneId
    grid_id: Id
    state: CaseState
    first_seen: Timestamp
    last_seen: Timestamp
    updated_at: Timestamp
    detections: Count = 1
    cameras: list[Id] = msgspec.field(default_factory=list)
    violation_ids: list[Id] = msgspec.field(default_factory=list)
    evidence: list[Evidence] = msgspec.field(default_factory=list)
    lat: Optional[Latitude] = None
    lon: Optional[Longitude] = None
    address: Text = ""
    priority: Priority = 3
    first_offence: bool = False
    prior_offences: Count = 0
    recurrence_of: Optional[Id] = None
    officer_id: Optional[Id] = None
    task_id: Optional[Id] = None
    deadline: Optional[Timestamp] = None
    reopen_count: Count = 0
    plate: Optional[Plate] = None  # the vehicle's plate, once the detector has read it
    schema_version: int = SCHEMA_VERSION


class Task(Record):
    """A dispatch of one incident to one officer (派遣); a reassignment is a new task."""

    TIMESTAMP_FIELDS = ("assigned_at", "accept_by", "deadline")
    STATUSES: ClassVar[tuple[str, ...]] = ("assigned", "accepted", "superseded", "done")

    task_id: Id
    incident_id: Id
    officer_id: Id
    grid_id: Id
    scenario: Id
    assigned_at: Timestamp
    accept_by: Timestamp
    deadline: Timestamp
    status: TaskStatus = "assigned"
    attempt: Count = 1
    first_offence: bool = False
    note: Text = ""
    schema_version: int = SCHEMA_VERSION


class Feedback(Record):
    """An officer's (or operator's) action on a case: accept, arrive, resolve, reject, reassign; an operator's
    review of an alarm awaiting it: confirm, dismiss (docs/stream.md)."""

    TIMESTAMP_FIELDS = ("at",)
    INPUT = True
    ACTIONS: ClassVar[tuple[str, ...]] = ("accept", "arrive", "resolve", "reject", "reassign", "confirm", "dismiss")

    feedback_id: Id
    incident_id: Id
    action: FeedbackAction
    actor: Id
    at: Timestamp
    task_id: Optional[Id] = None
    reason: Text = ""
    note: Text = ""
    evidence: list[Evidence] = msgspec.field(default_factory=list)
    target_officer: Optional[Id] = None
    schema_version: int = SCHEMA_VERSION


class CaseEvent(Record):
    """One line of the append-only audit log (执法全过程记录); replaying them rebuilds every case."""

    TIMESTAMP_FIELDS = ("at",)

    event_id: Id
    incident_id: Id
    seq: Count
    at: Timestamp
    actor: Id
    action: Id
    from_state: Optional[CaseState]
    to_state: Optional[CaseState]
    applied: bool = True
    reason: Text = ""
    evidence: list[Sha256] = msgspec.field(default_factory=list)  # sha256 of the evidence this step rests on
    task_id: Optional[Id] = None
    officer_id: Optional[Id] = None
    source: ShortText = ""  # topic/partition/offset of the message that caused it (contract.position)
    schema_version: int = SCHEMA_VERSION


class Alert(Record):
    """Something the operations center must see now (live alert wall)."""

    TIMESTAMP_FIELDS = ("at",)
    SEVERITIES: ClassVar[tuple[str, ...]] = ("info", "warning", "critical")

    alert_id: Id
    kind: AlertKind
    severity: Severity
    at: Timestamp
    message: Text
    incident_id: Optional[Id] = None
    camera_id: Optional[Id] = None
    grid_id: Optional[Id] = None
    schema_version: int = SCHEMA_VERSION


class DeadLetter(Record):
    """A message no consumer could use, kept with why and where it came from."""

    TIMESTAMP_FIELDS = ("at",)

    dead_letter_id: ShortText
    topic: ShortText
    partition: Count
    offset: Count
    reason: Text
    at: Timestamp
    raw: RawText
    schema_version: int = SCHEMA_VERSION


CONTRACT: dict[str, type[Record]] = {
    "detection": Detection,
    "camera_status": CameraStatus,
    "incident": Incident,
    "task": Task,
    "feedback": Feedback,
    "case_event": CaseEvent,
    "alert": Alert,
    "dead_letter": DeadLetter,
}
