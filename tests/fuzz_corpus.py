"""Malformed messages for the fuzz tests, each malformed by construction, for any contract record
(:func:`sample_records` gives one valid record of every contract type to start from).

:func:`make_malformed` draws one of the ways a message can be wrong — bytes that are not JSON or not
UTF-8, JSON that is not an object, a truncated message, nesting a thousand deep, a missing required
field, a field set to a value no field of the contract accepts (an object, a 30,000-character string,
1e300, a deep list), an unsupported schema version, a message over the size limit, or no value at all.
Its choices come from a :class:`Picker`: hypothesis's (:func:`malformed`, a strategy that shrinks) or a
seeded ``random.Random`` (:class:`RandomPicker`, for corpora of thousands sent through Kafka).

Example::

    >>> import random
    >>> raw = make_malformed(sample_records()[0], RandomPicker(random.Random(1)))
"""
from __future__ import annotations

import json
import random
from typing import Any, Optional, Protocol, Sequence

import msgspec
from hypothesis import strategies as st

from contract import (Alert, CameraStatus, CaseEvent, DeadLetter, Detection, Evidence, Feedback, Incident,
                      Record, Task, new_id, utc_now)
from contract.validate import MAX_INPUT_BYTES, MAX_RECORD_BYTES


def sample_records() -> list:
    """One valid record of every contract type, to send as is or to break."""
    now = utc_now()
    evidence = [Evidence(kind="annotated", sha256="a" * 64, uri="evidence/aa/" + "a" * 64 + ".jpg")]
    return [
        Detection(event_id=new_id(), kind="start", violation_id="cam-01/7/stray_dog", camera_id="cam-01",
                  scenario="stray_dog", zone_id="z-road", object_class="dog", track_id=7, confidence=0.91,
                  bbox=[0.1, 0.2, 0.3, 0.5], first_seen=now, observed_at=now, dwell_s=121.5, evidence=evidence,
                  plate="川A12345"),
        CameraStatus(event_id=new_id(), camera_id="cam-01", state="online", observed_at=now, last_frame_at=now,
                     last_inference_at=now, active=["stray_dog/z-road"]),
        Incident(incident_id=new_id(), camera_id="cam-01", scenario="stray_dog", zone_id="z-road", grid_id="G01",
                 state="DISPATCHED", first_seen=now, last_seen=now, updated_at=now, detections=3,
                 cameras=["cam-01"], violation_ids=["cam-01/7/stray_dog"], evidence=evidence, lat=30.65,
                 lon=104.06, address="解放路12号", first_offence=True, officer_id="O101", deadline=now),
        Task(task_id=new_id(), incident_id="i1", officer_id="O101", grid_id="G01", scenario="stray_dog",
             assigned_at=now, accept_by=now, deadline=now, first_offence=True),
        Feedback(feedback_id=new_id(), incident_id="i1", action="resolve", actor="O101", at=now, task_id="t1",
                 note="已劝离 moved on", evidence=evidence),
        CaseEvent(event_id=new_id(), incident_id="i1", seq=4, at=now, actor="O101", action="resolve",
                  from_state="ARRIVED", to_state="RESOLVED", evidence=["a" * 64], source="nonsite.feedback/0/17"),
        Alert(alert_id=new_id(), kind="escalated", severity="critical", at=now, message="超时未处置 overdue",
              incident_id="i1", grid_id="G01"),
        DeadLetter(dead_letter_id=new_id(), topic="nonsite.detections", partition=0, offset=42,
                   reason="not JSON", at=now, raw="{oops"),
    ]


WAYS = ("bytes", "not_object", "truncated", "deep_body", "deep_unknown", "missing", "bad_value", "version",
        "oversize", "none")


def deep(depth: int = 1000) -> str:
    return "[" * depth + "]" * depth


# JSON values (as text) that no top-level field of any contract record accepts
INVALID_VALUES = ("{}", '{"a": 1}', deep(), deep(40), '"' + "x" * 30_000 + '"', "1e300", "-1e300", "NaN",
                  "Infinity", "[1e300]", '[{"a": ' + deep(50) + "}]")
BAD_VERSIONS = ("2", "0", '"1"', "null", "1.5")


class Picker(Protocol):
    def one(self, options: Sequence[Any]) -> Any: ...
    def integer(self, low: int, high: int) -> int: ...
    def junk(self) -> bytes: ...
    def json_value(self) -> Any: ...


def make_malformed(sample: Record, pick: Picker, ways: Sequence[str] = WAYS) -> Optional[bytes]:
    """One message that must be refused, made from ``sample`` (a valid record); None = no value."""
    cls, data = type(sample), sample.asdict_deep()
    valid = sample.to_json()
    way = pick.one(ways)
    if way == "bytes":
        return pick.junk()
    if way == "not_object":
        return json.dumps(pick.json_value()).encode()
    if way == "truncated":
        return valid[:pick.integer(1, len(valid) - 1)]
    if way == "deep_body":
        return ('{"schema_version": 1, "' + pick.one(list(data)) + '": ' + deep(pick.integer(100, 5000)) + "}").encode()
    if way == "deep_unknown":
        return _with_field(data, "x_extra", deep(pick.integer(17, 3000)))
    if way == "missing":
        name = pick.one(required_fields(cls))
        return json.dumps({k: v for k, v in data.items() if k != name}, ensure_ascii=False).encode()
    if way == "bad_value":
        return _with_field(data, pick.one(list(data)), pick.one(INVALID_VALUES))
    if way == "version":
        return _with_field(data, "schema_version", pick.one(BAD_VERSIONS))
    if way == "oversize":
        limit = MAX_INPUT_BYTES if cls.INPUT else MAX_RECORD_BYTES
        return _with_field(data, "x_pad", '"' + "p" * (limit + 1) + '"')
    return None


def required_fields(cls: type[Record]) -> list[str]:
    return [f.name for f in msgspec.structs.fields(cls) if f.required]


def _with_field(data: dict, name: str, value_text: str) -> bytes:
    body = {k: v for k, v in data.items() if k != name}
    text = json.dumps(body, ensure_ascii=False)
    return (text[:-1] + f', "{name}": {value_text}}}').encode()


def _not_an_object(raw: bytes) -> bool:
    try:
        return not isinstance(json.loads(raw), dict)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return True


class HypothesisPicker:
    def __init__(self, draw: st.DrawFn):
        self.draw = draw

    def one(self, options: Sequence[Any]) -> Any:
        return self.draw(st.sampled_from(list(options)))

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))

    def junk(self) -> bytes:
        return self.draw(st.binary(min_size=1, max_size=300).filter(_not_an_object))

    def json_value(self) -> Any:
        return self.draw(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                      lambda inner: st.lists(inner, max_size=4), max_leaves=8))


class RandomPicker:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def one(self, options: Sequence[Any]) -> Any:
        return self.rng.choice(list(options))

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def junk(self) -> bytes:
        while True:
            raw = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 300)))
            if _not_an_object(raw):
                return raw

    def json_value(self) -> Any:
        return self.rng.choice([None, True, 7, -1.5, "text", [1, "a", None], [[[]]], "日本語"])


@st.composite
def malformed(draw: st.DrawFn, sample: Record) -> Optional[bytes]:
    """:func:`make_malformed` as a hypothesis strategy."""
    return make_malformed(sample, HypothesisPicker(draw))
