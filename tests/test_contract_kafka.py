"""Every record of the event contract survives a real Kafka round trip unchanged."""
from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer

from contract import (CONTRACT, Alert, CameraStatus, CaseEvent, ContractError, DeadLetter, Detection,
                            Evidence, Feedback, Incident, Task, new_id, utc_now)

pytestmark = pytest.mark.kafka


def sample_records() -> list:
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


def test_every_contract_type_is_sampled():
    assert {type(r) for r in sample_records()} == set(CONTRACT.values())


def test_round_trip_through_kafka_is_equal(kafka_bootstrap, topic_factory):
    topic = topic_factory("contract")
    records = sample_records()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    for record in records:
        producer.send(topic, key=type(record).__name__.encode(), value=record.to_json()).get(timeout=30)
    producer.close()

    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=15_000, group_id=None)
    received = []
    for message in consumer:
        cls = next(c for c in CONTRACT.values() if c.__name__ == message.key.decode())
        received.append(cls.from_json(message.value))
        if len(received) == len(records):
            break
    consumer.close()
    assert received == records
    assert [r.to_json() for r in received] == [r.to_json() for r in records]


@pytest.mark.parametrize("payload, complaint", [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"schema_version": 99}', "schema_version: unsupported 99"),
])
def test_malformed_messages_name_the_problem(payload, complaint):
    with pytest.raises(ContractError, match=complaint):
        Detection.from_json(payload)


def test_wrong_field_type_is_named():
    record = sample_records()[0]
    broken = record.to_json().replace(b'"track_id":7', b'"track_id":"seven"')
    with pytest.raises(ContractError, match=r"Detection.track_id: expected int, got str"):
        Detection.from_json(broken)


def test_timestamps_must_be_utc_iso():
    record = sample_records()[1]
    broken = record.to_json().replace(record.observed_at.encode(), b"yesterday")
    with pytest.raises(ContractError, match="CameraStatus.observed_at: not a UTC ISO-8601 timestamp"):
        CameraStatus.from_json(broken)


def test_docs_examples_match_the_contract():
    """docs/events.md cannot drift from the code: every example parses as its record."""
    import json
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "events.md").read_text(encoding="utf-8")
    examples = re.findall(r"### (\w+)\s+```json\n(.*?)```", text, flags=re.S)
    by_name = {cls.__name__: cls for cls in CONTRACT.values()}
    assert {name for name, _ in examples} == set(by_name)
    for name, body in examples:
        by_name[name].from_dict(json.loads(body))
