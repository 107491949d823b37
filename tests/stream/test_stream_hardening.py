"""Nothing a message holds stops the worker: poison and fuzzed inputs on the real local Kafka.

One worker subprocess; every malformed message must come out as exactly one dead letter (its id is
its position), every valid message interleaved with them must be applied, and the worker must stay up.
"""
from __future__ import annotations

import random
import time

import pytest
from kafka import KafkaProducer

from contract import CameraStatus, Detection, Evidence, Feedback, new_id, to_iso
from contract.position import source_of
from fuzz_corpus import RandomPicker, deep, make_malformed
from stream_support import running_system

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
GRIDS = ["G1", "G2", "G3", "G4"]
MALFORMED_PER_TOPIC = 700
VALID_PER_TOPIC = 100


@pytest.fixture(scope="module")
def system(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):
    outputs = ("case_events", "incidents", "alerts", "dead_letter")
    with running_system(tmp_path_factory.mktemp("stream-hardening"), GRIDS, outputs, acceptance_minutes=30) as system:
        yield system


def sent_at(metadata) -> str:
    return source_of(metadata.topic, metadata.partition, metadata.offset)


def test_the_1000_deep_message_is_dead_lettered_and_what_follows_is_processed(system):
    city, worker, inputs, readers = system
    topics = city.kafka.topics
    producer = KafkaProducer(bootstrap_servers=city.kafka.bootstrap, acks="all")
    poison = b'{"bbox": ' + deep(1000).encode() + b"}"
    poisoned = {sent_at(producer.send(topic, key=b"cam-G1", value=poison).get(timeout=30))
                for topic in (topics.detections, topics.camera_status, topics.feedback)}
    producer.close()
    inputs.detection("cam-G1", "start")
    incident = readers["incidents"].wait_for(lambda items: next((i for i in items if "cam-G1" in i["cameras"]), None),
                                             90, "the incident of the valid detection after the poison")
    assert incident["state"] == "DISPATCHED"
    letters = readers["dead_letter"].wait_for(
        lambda items: [d for d in items if d["dead_letter_id"] in poisoned] if len(
            {d["dead_letter_id"] for d in items} & poisoned) == 3 else None, 60, "the three poison dead letters")
    assert {d["reason"] for d in letters} == {"Detection: JSON nested deeper than 16",
                                               "CameraStatus: JSON nested deeper than 16",
                                               "Feedback: JSON nested deeper than 16"}
    assert worker.process.poll() is None, worker.log_tail()


def valid_inputs(city, incident_id: str, start: float):
    """Valid messages whose effect can be counted: updates of one violation (each counts in the incident),
    camera statuses alternating offline/online (each an alert), feedback refused as illegal (each a case event)."""
    detections = [Detection(event_id=new_id(), kind="update", violation_id="cam-G2/1/sidewalk_parking",
                            camera_id="cam-G2", scenario="sidewalk_parking", zone_id="z1", object_class="car",
                            track_id=1, confidence=0.8, bbox=[0.1, 0.5, 0.3, 0.9], first_seen=to_iso(start),
                            observed_at=to_iso(start + 1 + i), dwell_s=150.0 + i,
                            evidence=[Evidence(kind="annotated", sha256="b" * 64, uri="file:///e.jpg")])
                  for i in range(VALID_PER_TOPIC)]
    statuses = [CameraStatus(event_id=new_id(), camera_id="cam-G3", state="offline" if i % 2 == 0 else "online",
                             observed_at=to_iso(start + i)) for i in range(VALID_PER_TOPIC)]
    feedback = [Feedback(feedback_id=new_id(), incident_id=incident_id, action="resolve", actor="G2-O1",
                         at=to_iso(start + i)) for i in range(VALID_PER_TOPIC)]
    return {city.kafka.topics.detections: detections, city.kafka.topics.camera_status: statuses,
            city.kafka.topics.feedback: feedback}


def test_fuzz_malformed_inputs_each_become_one_dead_letter_and_every_valid_one_is_applied(system):
    city, worker, inputs, readers = system
    start = time.time()
    inputs.detection("cam-G2", "start", violation="1", at=start)
    first = readers["incidents"].wait_for(lambda items: next((i for i in items if "cam-G2" in i["cameras"]), None),
                                          90, "the fuzz target incident")
    incident_id = first["incident_id"]
    rng = random.Random(20261201)
    picker = RandomPicker(rng)
    producer = KafkaProducer(bootstrap_servers=city.kafka.bootstrap, acks="all", linger_ms=5,
                             max_request_size=2 * 1024 * 1024)
    malformed_at, valid_at, pending = set(), {}, []
    for topic, records in valid_inputs(city, incident_id, start).items():
        messages = [("bad", make_malformed(records[0], picker)) for _ in range(MALFORMED_PER_TOPIC)]
        messages += [("good", record) for record in records]
        rng.shuffle(messages)
        valid_sent = 0
        for kind, item in messages:
            if kind == "good":  # valid ones keep their order (updates, alternating states)
                item = records[valid_sent]
                valid_sent += 1
                pending.append(("good", topic, producer.send(topic, key=b"k", value=item.to_json())))
            else:
                pending.append(("bad", topic, producer.send(topic, key=b"k", value=item)))
    producer.flush(timeout=60)
    for kind, topic, future in pending:
        position = sent_at(future.get(timeout=60))
        (malformed_at.add(position) if kind == "bad" else valid_at.setdefault(topic, set()).add(position))
    producer.close()
    topics = city.kafka.topics
    total_bad = 3 * MALFORMED_PER_TOPIC

    letters = readers["dead_letter"].wait_for(
        lambda items: items if len({d["dead_letter_id"] for d in items} & malformed_at) == total_bad else None,
        180, f"{total_bad} dead letters")
    fuzz_letters = {d["dead_letter_id"]: d for d in letters if d["dead_letter_id"] in malformed_at}
    assert all(d["reason"].strip() for d in fuzz_letters.values())
    valid_positions = set().union(*valid_at.values())
    assert not [d for d in letters if d["dead_letter_id"] in valid_positions], "a valid message was dead-lettered"

    readers["incidents"].wait_for(
        lambda items: [i for i in items if i["incident_id"] == incident_id][-1]["detections"] == 1 + VALID_PER_TOPIC,
        120, "every valid detection counted in the incident")
    def feedback_sources(items: list[dict]) -> set[str]:
        return {e["source"] for e in items if e["source"] in valid_at[topics.feedback]}

    readers["case_events"].wait_for(lambda items: len(feedback_sources(items)) == VALID_PER_TOPIC, 120,
                                    "a case event for every valid feedback")
    readers["alerts"].wait_for(
        lambda items: len({a["alert_id"] for a in items if a.get("camera_id") == "cam-G3"}) == VALID_PER_TOPIC,
        120, "an alert for every valid camera status")
    assert worker.process.poll() is None, worker.log_tail()
    print(f"fuzz: {total_bad} malformed -> {len(fuzz_letters)} dead letters, 0 crashes, "
          f"all {3 * VALID_PER_TOPIC} valid processed")
