"""The cameras topic (detector scale-out): sticky, balanced placement; publishing makes the topic equal to
cameras.yaml (moves and removals as tombstones); a camera's password never reaches Kafka; a record no camera can
be made of is a dead letter, and the other cameras run."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from kafka import KafkaProducer

from conftest import reader_from_beginning
from contract import DeadLetter
from detector.camera_topic import camera_from_entry, place, publish_cameras, read_table
from detector.publisher import EventPublisher
from detector.sharing import CameraShare
from nonsite.config import ConfigError, load_city
from nonsite.kafka.admin import create_city_topics
from detector_group import group_city


def test_placement_is_balanced_and_keeps_cameras_where_they_are():
    ids = [f"cam-{n:03d}" for n in range(150)]
    placed = place(ids, {}, 12)
    loads = [list(placed.values()).count(s) for s in range(12)]
    assert max(loads) - min(loads) <= 1
    again = place(ids + ["cam-new"], placed, 12)
    assert {k: again[k] for k in ids} == placed  # adding a camera moves none
    fewer = place(ids[:100], placed, 12)
    assert sum(fewer[k] != placed[k] for k in ids[:100]) <= 12  # only shards above their share give cameras away
    assert max(list(fewer.values()).count(s) for s in range(12)) == 9  # ceil(100 / 12)


def test_a_record_is_expanded_by_the_reading_detector_and_a_bad_one_is_one_line(monkeypatch):
    monkeypatch.setenv("CAM_PASSWORD", "s3cret")
    entry = (b'{"grid":"G01","id":"cam-9","location":{"lat":30.6,"lon":104.0},"name":"n",'
             b'"source":"rtsp://u:${CAM_PASSWORD}@10.0.0.9/1"}')
    assert camera_from_entry("cam-9", entry).source == "rtsp://u:s3cret@10.0.0.9/1"
    with pytest.raises(ConfigError, match=r"^cameras.yaml on Kafka, camera cam-9: location: required field"):
        camera_from_entry("cam-9", b'{"grid":"G01","id":"cam-9","name":"n","source":"x"}')
    with pytest.raises(ConfigError, match="not the record's key"):
        camera_from_entry("cam-8", entry)


@pytest.mark.kafka
def test_publishing_makes_the_topic_equal_to_cameras_yaml(tmp_path: Path, kafka_bootstrap: str, monkeypatch):
    monkeypatch.setenv("NONSITE_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("CAM_PASSWORD", "s3cret")
    config = group_city(tmp_path, Path("/nonexistent.mp4"), cameras=5, dwell_s=5, session_timeout_s=10, shards=3)
    cameras_file = config / "cameras.yaml"
    entries = yaml.safe_load(cameras_file.read_text())["cameras"]
    entries[0]["source"] = "rtsp://u:${CAM_PASSWORD}@10.0.0.1/1"
    cameras_file.write_text(yaml.safe_dump({"cameras": entries}))
    city = load_city(config)
    create_city_topics(city, kafka_bootstrap)
    topic = city.kafka.topics.cameras

    first = publish_cameras(city)
    table, shards = read_table(kafka_bootstrap, topic)
    assert (first.written, first.removed, shards) == (5, 0, 3)
    assert sorted(len(cameras) for cameras in table.values()) == [1, 2, 2]
    values = b"".join(v for cameras in table.values() for v in cameras.values())
    assert b"${CAM_PASSWORD}" in values and b"s3cret" not in values
    assert publish_cameras(city).written == 0  # nothing changed: nothing written

    entries = entries[1:]  # cam-f1 removed
    entries[0]["sample_interval_s"] = 2  # cam-f2 changed
    entries[1]["enabled"] = False  # cam-f3 disabled
    cameras_file.write_text(yaml.safe_dump({"cameras": entries}))
    second = publish_cameras(load_city(config))
    table, _ = read_table(kafka_bootstrap, topic)
    held = {camera_id: shard for shard, cameras in table.items() for camera_id in cameras}
    assert sorted(held) == ["cam-f2", "cam-f4", "cam-f5"]
    # shards held f1 f4 | f2 f5 | f3; now one camera each: f5 moves to the emptied shard (a record there and a
    # tombstone in its old one), f2 is rewritten where it is, f1 and f3 get tombstones
    assert (second.written, second.removed) == (2, 3)
    assert sorted(held.values()) == [0, 1, 2] and held["cam-f2"] == 1 and held["cam-f4"] == 0
    assert camera_from_entry("cam-f2", table[held["cam-f2"]]["cam-f2"]).sample_interval_s == 2


@pytest.mark.kafka
def test_a_record_no_camera_can_be_made_of_is_a_dead_letter_and_the_others_run(tmp_path: Path, kafka_bootstrap: str,
                                                                                monkeypatch):
    monkeypatch.setenv("NONSITE_KAFKA_BOOTSTRAP", kafka_bootstrap)
    config = group_city(tmp_path, Path("/nonexistent.mp4"), cameras=2, dwell_s=5, session_timeout_s=6, shards=2)
    city = load_city(config)
    create_city_topics(city, kafka_bootstrap)
    publish_cameras(city)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    producer.send(city.kafka.topics.cameras, key=b"cam-bad", value=b'{"id": "cam-bad", "source": 3}', partition=1)
    producer.flush(10)
    producer.close()
    share = CameraShare(kafka_bootstrap, city.kafka.topics.cameras, "g-" + tmp_path.name[-20:], 6.0).start()
    publisher = EventPublisher(kafka_bootstrap, city.kafka.topics, tmp_path / "spool", 1 << 20)
    try:
        deadline, owned = time.monotonic() + 60, None
        while owned is None and time.monotonic() < deadline:
            owned = share.changed()
            time.sleep(0.1)
        assert owned is not None and sorted(owned) == ["cam-f1", "cam-f2"]  # the only member: every shard
        [letter] = share.take_refused()
        assert (letter.topic, letter.partition, letter.offset) == (city.kafka.topics.cameras, 1, 1)
        assert letter.reason.startswith("cameras.yaml on Kafka, camera cam-bad: ") and letter.raw.startswith('{"id"')
        publisher.publish(letter)
        assert publisher.flush(20)
    finally:
        share.close()
        publisher.close()
    consumer = reader_from_beginning(kafka_bootstrap, city.kafka.topics.dead_letter)
    try:
        found = [DeadLetter.from_json(r.value) for batch in consumer.poll(timeout_ms=5000).values() for r in batch]
    finally:
        consumer.close()
    assert [d.dead_letter_id for d in found] == [letter.dead_letter_id]
