"""The contract's bounds, and a fuzz of its one validator: every malformed message is refused with a
:class:`ContractError` naming the problem, and nothing else ever escapes (no crash, no RecursionError)."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract import (CONTRACT, CameraStatus, ContractError, Detection, Evidence, Feedback, decode, new_id,
                      utc_now)
from fuzz_corpus import deep, malformed, sample_records

NOW = utc_now()


def detection(**fields) -> bytes:
    base = Detection(event_id=new_id(), kind="start", violation_id="cam-01/7/sidewalk_parking", camera_id="cam-01",
                     scenario="sidewalk_parking", zone_id="z1", object_class="car", track_id=7, confidence=0.9,
                     bbox=[0.1, 0.2, 0.3, 0.5], first_seen=NOW, observed_at=NOW, dwell_s=10.0,
                     evidence=[Evidence(kind="annotated", sha256="a" * 64, uri="evidence/a.jpg")])
    return json.dumps({**base.asdict_deep(), **fields}, ensure_ascii=False).encode()


@pytest.mark.parametrize("fields, reason", [
    ({"bbox": [0.1, 0.2, 0.3]}, "Detection.bbox: expected array of length >= 4"),
    ({"bbox": [0.1, 0.2, 0.3, 0.4, 0.5]}, "Detection.bbox: expected array of length <= 4"),
    ({"bbox": [0.1, 0.2, 1.3, 0.5]}, "Detection.bbox[2]: expected float <= 1.0"),
    ({"bbox": [-0.1, 0.2, 0.3, 0.5]}, "Detection.bbox[0]: expected float >= 0.0"),
    ({"bbox": [0.3, 0.2, 0.1, 0.5]}, "Detection.bbox: corners out of order"),
    ({"confidence": -4.0}, "Detection.confidence: expected float >= 0.0"),
    ({"confidence": 1.01}, "Detection.confidence: expected float <= 1.0"),
    ({"plate": "川" * 400}, "Detection.plate: expected a Chinese plate"),
    ({"plate": "ABC123"}, "Detection.plate: expected a Chinese plate"),
    ({"camera_id": "cam 01"}, "Detection.camera_id: expected an id"),
    ({"camera_id": "<script>"}, "Detection.camera_id: expected an id"),
    ({"event_id": "e" * 161}, "Detection.event_id: expected str of length <= 160"),
    ({"event_id": ""}, "Detection.event_id: expected str of length >= 1"),
    ({"track_id": -1}, "Detection.track_id: expected int >= 0"),
    ({"dwell_s": -5}, "Detection.dwell_s: expected float >= 0.0"),
    ({"kind": "middle"}, "Detection.kind: invalid enum value 'middle' (one of start, update, end)"),
    ({"evidence": [{"kind": "annotated", "sha256": "xyz", "uri": "u"}]},
     "Detection.evidence[0].sha256: expected a sha256"),
    ({"evidence": [{"kind": "selfie", "sha256": "a" * 64, "uri": "u"}]},
     ("Detection.evidence[0].kind: invalid enum value 'selfie' "
      "(one of annotated, clean, first_seen, officer_photo, plate)")),
    ({"observed_at": "2026-13-45T00:00:00Z"}, "Detection.observed_at: not a UTC ISO-8601 timestamp"),
    ({"x": json.loads(deep(17))}, "Detection: JSON nested deeper than 16"),
    ({"pad": "p" * 70_000}, "Detection: message of 70"),
])
def test_a_detection_out_of_bounds_is_refused_naming_the_field(fields, reason):
    with pytest.raises(ContractError) as refused:
        decode(Detection, detection(**fields))
    assert str(refused.value).startswith(reason), str(refused.value)


@pytest.mark.parametrize("plate", ["皖A12345", "川AD12345", "粤B1234学", "京A0123警", "沪AF12345"])
def test_chinese_plates_of_every_kind_are_accepted(plate):
    assert decode(Detection, detection(plate=plate)).plate == plate


def test_the_1000_deep_message_of_the_attack_is_refused_on_every_input_type():
    raw = b'{"bbox": ' + deep(1000).encode() + b"}"
    for cls in (Detection, CameraStatus, Feedback):
        with pytest.raises(ContractError, match="nested deeper than 16"):
            decode(cls, raw)


def test_unknown_fields_are_dropped_and_the_record_is_the_contracts_own_type():
    sent = json.loads(detection())
    expected = decode(Detection, json.dumps(sent, ensure_ascii=False).encode())
    sent["added_by_a_newer_detector"] = {"lanes": [1, 2]}
    sent["evidence"][0]["width"] = 1920
    read = decode(Detection, json.dumps(sent, ensure_ascii=False).encode())
    assert type(read) is Detection and type(read.evidence[0]) is Evidence
    assert read == expected
    assert Detection.from_dict(sent) == expected


def test_an_unknown_field_nested_past_the_bound_is_refused_and_out_of_format_is_named_past_one():
    sent = json.loads(detection())
    sent["added"] = json.loads(deep(17))
    with pytest.raises(ContractError, match="nested deeper than 16"):
        decode(Detection, json.dumps(sent).encode())
    sent["added"] = 1
    sent["camera_id"] = "cam 01"
    with pytest.raises(ContractError, match="^Detection.camera_id: expected an id"):
        decode(Detection, json.dumps(sent).encode())
    with pytest.raises(ContractError, match="^Detection.camera_id: expected an id"):
        Detection.from_dict(sent)


SAMPLES = {type(record): record for record in sample_records()}


@pytest.mark.parametrize("name", sorted(CONTRACT))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzz_every_malformed_message_is_refused_with_a_reason(name, data):
    cls = CONTRACT[name]
    raw = data.draw(malformed(SAMPLES[cls]))
    if raw is None:
        return  # no value at all: the consumers' own check (an empty message), not the validator's
    with pytest.raises(ContractError) as refused:
        decode(cls, raw)
    assert str(refused.value).strip()
