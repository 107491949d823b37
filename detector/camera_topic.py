"""The cameras topic: every enabled camera's entry of cameras.yaml, keyed by camera id, one partition per shard.

Detectors that share the city (``detector.sharing.group``, :mod:`detector.sharing`) each run the cameras of
the partitions the consumer group gives them.  Every such detector publishes its cameras.yaml here at start
(:func:`publish_cameras`): the topic is made equal to the file, writing only what differs, so detectors
started together with the same file write the same records, and a camera removed or disabled gets a
tombstone.  An entry is stored as written, before ``${VAR}`` expansion, so a password held in the
environment never reaches Kafka; each detector expands it from its own (:func:`camera_from_entry`).

Placement (:func:`place`) is sticky and balanced: a camera keeps its shard while that shard holds no more than
its share (cameras / shards, rounded up); new cameras go to the emptiest shard.

Example::

    >>> place(["cam-1", "cam-2", "cam-3"], {"cam-2": 0}, 2)
    {'cam-2': 0, 'cam-1': 1, 'cam-3': 0}
    >>> publish_cameras(city)                       # doctest: +SKIP
    CameraPlacement(written=3, removed=0, shards=12)
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import structlog
import yaml
from pydantic import ValidationError

from nonsite.config import Camera, City, ConfigError
from nonsite.config.loading import FILES, _expand_env, field_error
from nonsite.kafka import clients

log = structlog.get_logger("detector.cameras")

Table = dict[int, dict[str, bytes]]  # partition -> camera id -> record value, as the topic holds them now


@dataclass(frozen=True)
class CameraPlacement:
    """What :func:`publish_cameras` changed."""

    written: int  # cameras whose record was new, changed or moved
    removed: int  # tombstones: cameras no longer in cameras.yaml (or disabled), or moved away from a shard
    shards: int


def place(camera_ids: Sequence[str], current: Mapping[str, int], shards: int) -> dict[str, int]:
    """Shard of each camera: where it is now while its shard holds no more than its share, else the emptiest."""
    share = max(1, math.ceil(len(camera_ids) / shards))
    load = [0] * shards
    placed: dict[str, int] = {}
    for camera_id in sorted(camera_ids):
        shard = current.get(camera_id)
        if shard is not None and 0 <= shard < shards and load[shard] < share:
            placed[camera_id] = shard
            load[shard] += 1
    for camera_id in sorted(set(camera_ids) - set(placed)):
        shard = min(range(shards), key=lambda s: (load[s], s))
        placed[camera_id] = shard
        load[shard] += 1
    return placed


def raw_entries(city: City) -> dict[str, dict[str, Any]]:
    """The enabled cameras' entries as cameras.yaml writes them (``${VAR}`` not expanded), by camera id."""
    path = city.root / FILES["cameras"]
    entries = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("cameras") or []
    enabled = {c.id for c in city.cameras if c.enabled}
    return {e["id"]: e for e in entries if isinstance(e, dict) and e.get("id") in enabled}


def encode(entry: Mapping[str, Any]) -> bytes:
    return json.dumps(entry, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def camera_from_entry(camera_id: str, value: bytes) -> Camera:
    """The camera a record describes, with ``${VAR}`` expanded from this process's environment.

    Raises :class:`ConfigError` with one line naming the camera and the field.
    """
    where = f"{FILES['cameras']} on Kafka, camera {camera_id}"
    try:
        entry = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: not JSON: {exc}") from None
    try:
        camera = Camera.model_validate(_expand_env(entry, "", where))
    except ValidationError as exc:
        raise ConfigError(f"{where}: {field_error(exc)}") from None
    if camera.id != camera_id:
        raise ConfigError(f"{where}: its id is {camera.id!r}, not the record's key")
    return camera


def read_table(bootstrap: str, topic: str, timeout_s: float = 10.0) -> tuple[Table, int]:
    """The topic as it is now (latest value per key and partition, tombstones applied) and its partition count."""
    from kafka import TopicPartition

    consumer = clients.reader(bootstrap, client_id="nonsite-cameras", request_timeout_ms=int(timeout_s * 1000))
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ConfigError(f"kafka.topics.cameras: topic {topic} does not exist at {bootstrap}; "
                              f"create it with `nonsite kafka topics`")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        table: Table = {tp.partition: {} for tp in tps}
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    apply_record(table[tp.partition], record.key, record.value)
        return table, len(tps)
    finally:
        consumer.close()


def apply_record(partition: dict[str, bytes], key: Optional[bytes], value: Optional[bytes]) -> None:
    """One record of the topic onto a partition's table: a value replaces the camera's, a tombstone removes it."""
    if key is None:
        return
    if value is None:
        partition.pop(key.decode(), None)
    else:
        partition[key.decode()] = value


def ensure_cameras_topic(city: City) -> None:
    """Create the cameras topic if missing, with its shards, lifecycle and replication (as ``nonsite kafka topics``)."""
    from nonsite.kafka.admin import replicate_topics, replication_for
    from nonsite.kafka.lifecycle import project_topics

    specs = [s for s in project_topics(city) if s.kind == "cameras"]
    replicate_topics(city.kafka.bootstrap, specs, replication_for(city.kafka.bootstrap, city.kafka.replication_factor))


def publish_cameras(city: City, timeout_s: float = 10.0) -> CameraPlacement:
    """Make the cameras topic hold the enabled cameras of cameras.yaml, each in its shard; returns what changed."""
    bootstrap, topic = city.kafka.bootstrap, city.kafka.topics.cameras
    table, shards = read_table(bootstrap, topic, timeout_s)
    where = {camera_id: p for p, cameras in sorted(table.items()) for camera_id in cameras}
    entries = raw_entries(city)
    shard_of = place(list(entries), where, shards)
    producer = clients.producer(bootstrap, client_id="nonsite-cameras", max_block_ms=int(timeout_s * 1000))
    sent, removed = [], 0
    try:
        for camera_id, entry in sorted(entries.items()):
            value, shard = encode(entry), shard_of[camera_id]
            if table[shard].get(camera_id) != value:
                sent.append(producer.send(topic, key=camera_id.encode(), value=value, partition=shard))
        written = len(sent)
        for partition, cameras in table.items():  # after the new records: a moved camera is never nowhere
            for camera_id in cameras:
                if shard_of.get(camera_id) != partition:
                    sent.append(producer.send(topic, key=camera_id.encode(), value=None, partition=partition))
                    removed += 1
        producer.flush(timeout=timeout_s)
        for future in sent:  # flush() returns even when a batch expired: only the futures tell
            future.get(timeout=timeout_s)
    finally:
        producer.close(timeout=2)
    log.info("cameras published", topic=topic, cameras=len(entries), written=written, removed=removed, shards=shards)
    return CameraPlacement(written, removed, shards)
