"""Fuzz of the web app's read model on the real local Kafka: every topic it reads gets hundreds of
malformed messages shuffled among valid ones.

Expected: the app stays healthy, every valid record is folded into the read model, every malformed
one is counted and, except on the dead-letter topic itself, dead-lettered once under its position.
"""
from __future__ import annotations

import random
import time

import pytest
from kafka import KafkaProducer
from prometheus_client import REGISTRY

from conftest import reader_from_beginning
from contract import DeadLetter, new_id
from contract.position import source_of
from fuzz_corpus import WAYS, RandomPicker, make_malformed, sample_records
from web_harness import WebHarness, start_web

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
MALFORMED_PER_TOPIC = 300
VALID_PER_TOPIC = 30
# records over the output limit (1 MiB) are over Kafka's own message limit too: the broker refuses them
WAYS_KAFKA_TAKES = tuple(way for way in WAYS if way != "oversize")
TOPICS = {"incidents": "Incident", "tasks": "Task", "alerts": "Alert", "camera_status": "CameraStatus",
          "case_events": "CaseEvent", "dead_letter": "DeadLetter"}


@pytest.fixture(scope="module")
def web(kafka_bootstrap: str, city, tmp_path_factory) -> WebHarness:
    harness = start_web(city, kafka_bootstrap, tmp_path_factory.mktemp("evidence"))
    yield harness
    harness.stop()


def fresh(record):
    """``record`` with new ids (each valid message its own record) and a timestamp of now."""
    import msgspec

    ids = {name: new_id() for name in ("incident_id", "task_id", "alert_id", "event_id", "dead_letter_id")
           if name in record.field_names()}
    return msgspec.structs.replace(record, **ids)


def counter(name: str, topic: str) -> float:
    return REGISTRY.get_sample_value(name, {"topic": topic}) or 0.0


def test_fuzz_every_read_topic_keeps_the_read_model_up(web: WebHarness):
    samples = {type(r).__name__: r for r in sample_records()}
    rng = random.Random(20261201)
    picker = RandomPicker(rng)
    producer = KafkaProducer(bootstrap_servers=web.city.kafka.bootstrap, acks="all", linger_ms=5,
                             max_request_size=2 * 1024 * 1024)
    before = {kind: (counter("nonsite_web_consumed_total", kind), counter("nonsite_web_bad_records_total", kind))
              for kind in TOPICS}
    pending = []
    for kind, record_name in TOPICS.items():
        topic = getattr(web.city.kafka.topics, kind)
        messages = [("bad", make_malformed(samples[record_name], picker, WAYS_KAFKA_TAKES))
                    for _ in range(MALFORMED_PER_TOPIC)]
        messages += [("good", fresh(samples[record_name]).to_json()) for _ in range(VALID_PER_TOPIC)]
        rng.shuffle(messages)
        pending += [(kind, verdict, producer.send(topic, key=new_id().encode(), value=value))
                    for verdict, value in messages]
    producer.flush(60)
    malformed_at = {source_of(m.topic, m.partition, m.offset) for kind, verdict, future in pending
                    if verdict == "bad" and kind != "dead_letter" for m in [future.get(30)]}
    producer.close(10)

    # the dead-letter topic also carries (valid) dead letters the app writes for the other topics' bad records
    valid = {kind: VALID_PER_TOPIC + (len(malformed_at) if kind == "dead_letter" else 0) for kind in TOPICS}

    def caught_up() -> bool:
        return all(counter("nonsite_web_consumed_total", kind) - before[kind][0] >= valid[kind] and
                   counter("nonsite_web_bad_records_total", kind) - before[kind][1] >= MALFORMED_PER_TOPIC
                   for kind in TOPICS)

    web.wait_for(caught_up, timeout=120, what="every fuzzed message read")
    for kind in TOPICS:  # exactly: every valid one folded, every malformed one refused
        assert counter("nonsite_web_consumed_total", kind) - before[kind][0] == valid[kind], kind
        assert counter("nonsite_web_bad_records_total", kind) - before[kind][1] == MALFORMED_PER_TOPIC, kind
    letters = dead_letters_at(web, malformed_at)
    assert set(letters) == malformed_at
    assert all(letter.reason.strip() for letter in letters.values())
    health = web.client().get("/api/health")
    assert health.status_code == 200 and health.json()["ok"]
    print(f"web fuzz: {len(TOPICS) * MALFORMED_PER_TOPIC} malformed -> {len(letters)} dead letters "
          f"(+{MALFORMED_PER_TOPIC} counted on the dead-letter topic itself), 0 crashes, "
          f"all {len(TOPICS) * VALID_PER_TOPIC} valid processed")


def dead_letters_at(web: WebHarness, positions: set[str], timeout: float = 60.0) -> dict[str, DeadLetter]:
    """The dead letters the app wrote for ``positions``, by position."""
    reader = reader_from_beginning(web.city.kafka.bootstrap, web.city.kafka.topics.dead_letter)
    found: dict[str, DeadLetter] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(found) < len(positions) and time.monotonic() < deadline:
            for batch in reader.poll(timeout_ms=300).values():
                for message in batch:
                    try:
                        letter = DeadLetter.from_json(message.value)
                    except Exception:  # the fuzz's own malformed messages on this topic
                        continue
                    if letter.dead_letter_id in positions:
                        found[letter.dead_letter_id] = letter
    finally:
        reader.close()
    return found
