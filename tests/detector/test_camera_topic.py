"""The cameras topic (detector scale-out): sticky, balanced placement; publishing makes the topic equal to
cameras.yaml (moves and removals as tombstones); a camera's password never reaches Kafka."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from detector.camera_topic import camera_from_entry, place, publish_cameras, read_table
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
