"""Stage one, pure: validate a raw message from an input topic and route it to its district.

A valid message becomes an :class:`Envelope` for the internal cases topic, keyed by district; a bad
one becomes a :class:`~contract.DeadLetter` naming what is wrong and where it came from.
Intake sends the envelopes of one district in batches (:func:`pack`): one cases-topic message holds
many inputs, and the case engine applies a message as one unit (see :mod:`stream.state.journal`).

Example::

    >>> env = Envelope("tick", "G01", "tick", -1, {"now": "2026-11-21T01:00:00.000Z"})
    >>> Envelope.from_bytes(env.to_bytes()) == env
    True
    >>> [unpack(message) for message in pack([env, env])] == [[env, env]]
    True
"""
from __future__ import annotations

from typing import Any, Optional, Union

import msgspec

from contract import CameraStatus, DeadLetter, Detection, Feedback, decode, utc_now
from contract.deadletter import dead_letter, failure_reason
from contract.validate import ContractError, admitted_type, decode_admitted
from contract import wire
from contract.position import source_of
from stream.domain.dedup import CityMap, district_of_incident, spot

ROLES = {"detections": Detection, "camera_status": CameraStatus, "feedback": Feedback}


class Envelope(msgspec.Struct, frozen=True, gc=False):
    """One input for the case engine: ``stream`` is ``topic:partition`` of its source, ``offset`` its offset
    (``tick`` and -1 for a tick).

    ``payload`` is the validated message (a :mod:`contract` record), or a plain dict for a tick.
    ``gc=False``: an envelope is made with its payload and never changes, so it cannot be part of a
    reference cycle, and the collector need not track the thousands a batch keeps alive.
    """

    kind: str  # detections | camera_status | feedback | tick
    district: str
    stream: str
    offset: int
    payload: Any

    @property
    def origin(self) -> tuple[str, int, int]:
        """The topic, partition and offset of the input message (not for ticks)."""
        topic, partition = self.stream.rsplit(":", 1)
        return topic, int(partition), self.offset

    @property
    def source(self) -> str:
        """Where the input came from, as case events name it (:func:`contract.position.source_of`)."""
        return source_of(*self.origin) if self.kind != "tick" else "tick"

    def to_bytes(self) -> bytes:
        return wire.encode(self)

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Envelope":
        return _from_wire(_read_wire(raw))


class _Wire(msgspec.Struct, gc=False):
    """An envelope as it travels: the payload is decoded once its kind is known."""

    kind: str
    district: str
    stream: str
    offset: int
    payload: msgspec.Raw


class _WireBatch(msgspec.Struct):
    batch: list[_Wire]


_read_wire = msgspec.json.Decoder(_Wire).decode
_wire_batch = msgspec.json.Decoder(_WireBatch).decode


def _from_wire(item: _Wire) -> Envelope:
    role = ROLES.get(item.kind)
    payload = wire.decode_any(item.payload) if role is None else decode_admitted(role, item.payload)
    return Envelope(item.kind, item.district, item.stream, item.offset, payload)


def _typed_wire(kind: str, payload: Any) -> type:
    """An envelope of ``kind`` as it travels, its payload read with it: one member of a batch's tagged union."""
    return msgspec.defstruct(f"_Wire_{kind}", [("district", str), ("stream", str), ("offset", int),
                                                ("payload", payload)], tag_field="kind", tag=kind, gc=False)


_KIND_OF = {_typed_wire(kind, admitted_type(role)): kind for kind, role in ROLES.items()}
_KIND_OF[_typed_wire("tick", Any)] = "tick"
# a whole batch in one pass of msgspec (the payloads read as admitted_type: see contract.validate.decode_admitted)
_typed_batch = msgspec.json.Decoder(msgspec.defstruct("_TypedBatch", [("batch", list[Union[tuple(_KIND_OF)]])])).decode


MAX_BATCH_BYTES = 768 * 1024  # below the 1 MB message limit of Kafka and of the Faust consumer fetch


def pack(envelopes: list[Envelope], max_bytes: int = MAX_BATCH_BYTES,
         raws: Optional[list[Optional[bytes]]] = None) -> list[bytes]:
    """Cases-topic messages holding ``envelopes`` in order: ``{"batch": [envelope, ...]}``, each under ``max_bytes``.

    ``raws``: the input messages the envelopes were admitted from, or None where a payload must be
    encoded from its record.  Their bytes are passed through as the payloads instead of encoding the
    validated records again; the engine decodes them with the same types, which fills in defaults
    and drops unknown fields (:func:`unpack`).
    """
    messages: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    for index, env in enumerate(envelopes):
        if raws is None or raws[index] is None:
            part = wire.encode(env)
        else:
            part = wire.encode(_Wire(env.kind, env.district, env.stream, env.offset, msgspec.Raw(raws[index])))
        if parts and size + len(part) > max_bytes:
            messages.append(_batch(parts))
            parts, size = [], 0
        parts.append(part)
        size += len(part) + 1
    if parts:
        messages.append(_batch(parts))
    return messages


def _batch(parts: list[bytes]) -> bytes:
    """``{"batch": [parts]}``, the parts copied once (the brackets go on the first and last part)."""
    parts[0] = b'{"batch":[' + parts[0]
    parts[-1] += b"]}"  # after the first: they may be the same part
    return b",".join(parts)


def unpack(raw: bytes) -> list[Envelope]:
    """The inputs of one cases-topic message: a batch from :func:`pack` or one :meth:`Envelope.to_bytes`."""
    if raw.startswith(b'{"batch":'):
        try:
            items = _typed_batch(raw).batch
        except msgspec.DecodeError:  # an input that fits no kind: read one by one, for the error naming it
            return [_from_wire(item) for item in _wire_batch(raw).batch]
        return [Envelope(_KIND_OF[type(item)], item.district, item.stream, item.offset, item.payload)
                for item in items]
    return [_from_wire(_read_wire(raw))]


def admit(role: str, raw: Optional[bytes], topic: str, partition: int, offset: int,
          city_map: CityMap) -> Union[Envelope, DeadLetter]:
    """Validate one message of the input topic playing ``role``: its envelope, or its dead letter.

    Nothing a message holds can make this raise: any failure while reading it becomes the reason of
    its dead letter (the exception's class and text when it is not a contract refusal).
    """
    if raw is None:
        return dead_letter(topic, partition, offset, "empty message (no value)", raw, utc_now())
    try:
        record = decode(ROLES[role], raw)
        district = _district(role, record, city_map)
    except ContractError as exc:
        return dead_letter(topic, partition, offset, str(exc), raw, utc_now())
    except Exception as exc:  # noqa: BLE001  (a bug met by one message must not stop intake)
        return dead_letter(topic, partition, offset, failure_reason(exc), raw, utc_now())
    if district[0] == "!":
        return dead_letter(topic, partition, offset, district[1:], raw, utc_now())
    return Envelope(role, district, f"{topic}:{partition}", offset, record)


class Fields(dict):
    """A validated message as a plain dict with attribute access (``d.camera_id``): no Record overhead."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _district(role: str, record: Any, city_map: CityMap) -> str:
    """The district to route to, or ``"!reason"`` when the message cannot be used."""
    if role == "feedback":
        district = district_of_incident(record.incident_id)
        if district not in city_map.districts:
            return f"!feedback for unknown case {record.incident_id!r}"
        return district
    camera_id = record.camera_id
    district = city_map.district_of_camera.get(camera_id)
    if district is None:
        return f"!unknown camera id {camera_id!r}"
    if role == "camera_status":
        return district
    if record.scenario not in city_map.scenarios:
        return f"!unknown scenario {record.scenario!r}"
    zone_id = record.zone_id
    if zone_id and spot(camera_id, zone_id) not in city_map.neighbours:
        return f"!unknown zone {zone_id!r} of camera {camera_id!r}"
    return district
