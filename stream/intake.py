"""Stage one, pure: validate a raw message from an input topic and route it to its district.

A valid message becomes an :class:`Envelope` for the internal cases topic, keyed by district; a bad
one becomes a :class:`~stream.records.DeadLetter` naming what is wrong and where it came from.
Intake sends the envelopes of one district in batches (:func:`pack`): one cases-topic message holds
many inputs, and the case engine applies a message as one unit (see :mod:`stream.journal`).

Example::

    >>> env = Envelope("tick", "G01", "tick", -1, {"now": "2026-11-21T01:00:00.000Z"})
    >>> Envelope.from_bytes(env.to_bytes()) == env
    True
    >>> [unpack(message) for message in pack([env, env])] == [[env, env]]
    True
"""
from __future__ import annotations

import copy
import functools
import json
import typing
from dataclasses import dataclass
from typing import Any, Callable, List, Union

from nonsite.config import City
from stream.deadletter import dead_letter
from stream.dedup import CityMap, district_of_incident
from stream.records import (SCHEMA_VERSION, CameraStatus, ContractError, ContractRecord, DeadLetter, Detection,
                            Feedback, _check_type, parse_iso, utc_now)

ROLES = {"detections": Detection, "camera_status": CameraStatus, "feedback": Feedback}


@dataclass(frozen=True)
class Envelope:
    """One input for the case engine: ``stream`` is ``topic:partition`` of its source, ``offset`` its offset."""

    kind: str  # detections | camera_status | feedback | tick
    district: str
    stream: str
    offset: int
    payload: dict[str, Any]

    @property
    def source(self) -> str:
        return f"{self.stream.replace(':', '/')}/{self.offset}" if self.kind != "tick" else "tick"

    def to_bytes(self) -> bytes:
        return json.dumps({"kind": self.kind, "district": self.district, "stream": self.stream, "offset": self.offset,
                           "payload": self.payload}, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Envelope":
        return cls(**json.loads(raw))


MAX_BATCH_BYTES = 256 * 1024  # well below Kafka's 1 MB message limit


def pack(envelopes: list[Envelope], max_bytes: int = MAX_BATCH_BYTES) -> list[bytes]:
    """Cases-topic messages holding ``envelopes`` in order: ``{"batch": [envelope, ...]}``, each under ``max_bytes``."""
    messages: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    for env in envelopes:
        part = env.to_bytes()
        if parts and size + len(part) > max_bytes:
            messages.append(b'{"batch":[' + b",".join(parts) + b"]}")
            parts, size = [], 0
        parts.append(part)
        size += len(part) + 1
    if parts:
        messages.append(b'{"batch":[' + b",".join(parts) + b"]}")
    return messages


def unpack(raw: bytes) -> list[Envelope]:
    """The inputs of one cases-topic message: a batch from :func:`pack` or one :meth:`Envelope.to_bytes`."""
    data = json.loads(raw)
    if "batch" in data:
        return [Envelope(**item) for item in data["batch"]]
    return [Envelope(**data)]


def admit(role: str, raw: bytes, topic: str, partition: int, offset: int, city: City,
          city_map: CityMap) -> Union[Envelope, DeadLetter]:
    """Validate one message of the input topic playing ``role``."""
    def reject(reason: str) -> DeadLetter:
        return dead_letter(topic, partition, offset, reason, raw if raw is not None else b"", utc_now())

    if raw is None:
        return reject("empty message (no value)")
    try:
        record = validated(ROLES[role], raw)
    except ContractError as exc:
        return reject(str(exc))
    district = _district(role, record, city, city_map)
    if isinstance(district, str) and district.startswith("!"):
        return reject(district[1:])
    return Envelope(role, district, f"{topic}:{partition}", offset, record)


class Fields(dict):
    """A validated message as a plain dict with attribute access (``d.camera_id``): no Record overhead."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


Check = Callable[[Any], bool]
_ACCEPTED = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}


def _compile(annotation: Any) -> Check:
    """A fast yes/no version of ``records._check_type`` for one annotation.

    It accepts only what ``_check_type`` accepts; on a no, :func:`validated` runs ``_check_type``
    itself, which raises the message naming the field.
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        inner = _compile(next(a for a in args if a is not type(None)))
        if type(None) not in args:
            return inner
        return lambda value: value is None or inner(value)
    if origin in (list, List):
        item = _compile(args[0]) if args else (lambda value: True)
        return lambda value: type(value) is list and all(item(v) for v in value)
    if isinstance(annotation, type) and issubclass(annotation, ContractRecord):
        return _compile_record(annotation)
    accepted = _ACCEPTED.get(annotation)
    if accepted is None:
        return lambda value: True
    if annotation is bool:
        return lambda value: type(value) is bool
    return lambda value: type(value) is not bool and isinstance(value, accepted)


def _compile_record(cls: type[ContractRecord]) -> Check:
    checks = [(name, _compile(sub), name in cls._options.defaults) for name, sub in cls._options.fields.items()]

    def check(value: Any) -> bool:
        if type(value) is not dict:
            return False
        for name, ok, optional in checks:
            if name in value:
                if not ok(value[name]):
                    return False
            elif not optional:
                return False
        return True
    return check


@functools.lru_cache(maxsize=None)
def _field_checks(cls: type[ContractRecord]) -> list[tuple[str, Any, Check]]:
    return [(name, annotation, _compile(annotation)) for name, annotation in cls._options.fields.items()]


def validated(cls: type[ContractRecord], raw: bytes | str) -> Fields:
    """The checks of ``cls.from_json`` (same messages), returning the fields with defaults filled in."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError(f"expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ContractError(f"schema_version: unsupported {version!r} (this build reads {SCHEMA_VERSION})")
    options = cls._options
    fields = Fields()
    for name, annotation, ok in _field_checks(cls):
        if name in data:
            value = data[name]
            if not ok(value):
                _check_type(f"{cls.__name__}.{name}", value, annotation)
            fields[name] = value
        elif name in options.defaults:
            fields[name] = copy.copy(options.defaults[name])
        else:
            raise ContractError(f"{cls.__name__}.{name}: missing field")
    for name in cls.TIMESTAMP_FIELDS:
        value = fields.get(name)
        if value is not None:
            try:
                parse_iso(value)
            except (TypeError, ValueError, AttributeError):
                raise ContractError(f"{cls.__name__}.{name}: not a UTC ISO-8601 timestamp: {value!r}") from None
    return fields


def _district(role: str, record: Any, city: City, city_map: CityMap) -> str:
    """The district to route to, or ``"!reason"`` when the message cannot be used."""
    if role == "feedback":
        if record.action not in Feedback.ACTIONS:
            return f"!Feedback.action: unknown action {record.action!r} (one of {', '.join(Feedback.ACTIONS)})"
        district = district_of_incident(record.incident_id)
        if district not in city_map.districts:
            return f"!feedback for unknown case {record.incident_id!r}"
        return district
    district = city_map.district_of_camera.get(record.camera_id)
    if district is None:
        return f"!unknown camera id {record.camera_id!r}"
    if role == "camera_status":
        if record.state not in CameraStatus.STATES:
            return f"!CameraStatus.state: unknown state {record.state!r}"
        return district
    if record.kind not in Detection.KINDS:
        return f"!Detection.kind: unknown kind {record.kind!r} (one of start, update, end)"
    if city.scenario(record.scenario) is None:
        return f"!unknown scenario {record.scenario!r}"
    if record.zone_id and city.camera(record.camera_id).zone(record.zone_id) is None:
        return f"!unknown zone {record.zone_id!r} of camera {record.camera_id!r}"
    return district
