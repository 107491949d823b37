"""Every record of the event contract survives a real Kafka round trip unchanged."""
from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer

from contract import CONTRACT, CameraStatus, ContractError, Detection
from fuzz_corpus import sample_records

pytestmark = pytest.mark.kafka


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

    text = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text(encoding="utf-8")
    examples = re.findall(r"### (\w+)\s+```json\n(.*?)```", text, flags=re.S)
    by_name = {cls.__name__: cls for cls in CONTRACT.values()}
    assert {name for name, _ in examples} == set(by_name)
    for name, body in examples:
        by_name[name].from_dict(json.loads(body))
