"""EventPublisher and its spool against real Apache Kafka: keyed delivery, an outage, overflow, a restart.

The outage test runs its own single-node Kafka (nonsite.devtools.kafka_local.LocalKafka in a tmp folder on
free ports) so it can stop and restart the broker without disturbing the session's broker.
"""
from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path

import msgspec
import pytest

from conftest import free_port_block, reader_from_beginning
from detector import metrics
from detector.publisher import EventPublisher
from detector.spool import Spool, SpoolRecord
from nonsite.config import Topics
from nonsite.devtools.kafka_local import LocalKafka
from nonsite.kafka.admin import ensure_topics
from contract import CameraStatus, Detection, new_id, to_iso


def detection(camera_id: str, number: int) -> Detection:
    moment = to_iso(1_790_000_000 + number)
    return Detection(event_id=new_id(), kind="update", violation_id=f"{camera_id}/{number}/stray_dog",
                     camera_id=camera_id, scenario="stray_dog", zone_id="z-road", object_class="dog",
                     track_id=number, confidence=0.8, bbox=[0.1, 0.2, 0.3, 0.4], first_seen=moment,
                     observed_at=moment, dwell_s=float(number))


def status(camera_id: str, state: str = "online") -> CameraStatus:
    return CameraStatus(event_id=new_id(), camera_id=camera_id, state=state, observed_at=to_iso(time.time()),
                        reason="test")


def consume(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[tuple[int, bytes, bytes]]:
    """Every record of ``topic`` from the beginning: (partition, key, value), in offset order per partition."""
    consumer = reader_from_beginning(bootstrap, topic)
    try:
        records: list[tuple[int, bytes, bytes]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend((r.partition, r.key, r.value) for r in batch)
            if len(records) >= expected:
                # one more poll: anything beyond ``expected`` (a duplicate) must show up too
                for batch in consumer.poll(timeout_ms=1000).values():
                    records.extend((r.partition, r.key, r.value) for r in batch)
                break
        return records
    finally:
        consumer.close()


def ids_by_camera(records: list[tuple[int, bytes, bytes]], parse) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for _partition, key, value in records:
        record = parse(value)
        assert key.decode() == record.camera_id
        grouped.setdefault(record.camera_id, []).append(record.event_id)
    return grouped


def expected_by_camera(records) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for record in records:
        grouped.setdefault(record.camera_id, []).append(record.event_id)
    return grouped


def wait_until(condition, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


@pytest.mark.kafka
def test_records_go_to_their_topics_keyed_by_camera_in_order(kafka_bootstrap, topic_factory, tmp_path):
    topics = Topics(detections=topic_factory("detections", partitions=4),
                    camera_status=topic_factory("camera-status", partitions=2))
    publisher = EventPublisher(kafka_bootstrap, topics, tmp_path / "spool", 1 << 20)
    sent = [detection(f"cam-{n % 3}", n) for n in range(30)]
    statuses = [status(f"cam-{n}") for n in range(3)]
    try:
        for record in sent:
            publisher.publish(record)
        for record in statuses:
            publisher.publish(record)
        assert publisher.flush(30), "Kafka did not acknowledge every record within 30 s"
        assert publisher.spool_depth == 0 and publisher.kafka_up
    finally:
        publisher.close()

    got = consume(kafka_bootstrap, topics.detections, len(sent))
    assert ids_by_camera(got, Detection.from_json) == expected_by_camera(sent)
    by_key = {}
    for partition, key, _ in got:
        by_key.setdefault(key, set()).add(partition)
    assert all(len(parts) == 1 for parts in by_key.values()), "one camera's records spread over partitions"
    assert Detection.from_json(got[0][2]) in sent
    got_status = consume(kafka_bootstrap, topics.camera_status, len(statuses))
    assert sorted(CameraStatus.from_json(v).event_id for _, _, v in got_status) == \
        sorted(s.event_id for s in statuses)


@pytest.mark.kafka
def test_a_record_kafka_can_never_take_is_logged_and_passed_over(kafka_bootstrap, topic_factory, tmp_path, capfd):
    topics = Topics(detections=topic_factory("detections"), camera_status=topic_factory("camera-status"))
    publisher = EventPublisher(kafka_bootstrap, topics, tmp_path / "spool", 8 << 20)
    giant = msgspec.structs.replace(detection("cam-0", 1), plate="x" * (2 << 20))  # constructed, never validated
    normal = [detection("cam-0", 0), giant, detection("cam-0", 2)]
    errors_before = metrics.sample("nonsite_detector_publish_errors_total")
    try:
        for record in normal:
            publisher.publish(record)
        assert publisher.flush(30), "an oversized record blocked the queue"
    finally:
        publisher.close()
    got = consume(kafka_bootstrap, topics.detections, 2)
    assert [Detection.from_json(v).event_id for _, _, v in got] == [normal[0].event_id, normal[2].event_id]
    assert metrics.sample("nonsite_detector_publish_errors_total") - errors_before == 1
    assert giant.event_id in "".join(capfd.readouterr())


@pytest.mark.kafka
@pytest.mark.slow
def test_kafka_outage_spools_then_delivers_in_order_and_counts_overflow(tmp_path, capfd):
    kafka = LocalKafka(tmp_path / "kafka", nodes=1, base_port=free_port_block(2))
    bootstrap = kafka.start()
    topics = Topics(detections="outage.detections", camera_status="outage.camera-status")
    ensure_topics(bootstrap, topics.all().values(), partitions=2, replication_factor=1)
    fits = 30
    during = [detection("cam-a" if n % 2 else "cam-b", n) for n in range(100, 100 + fits + 10)]
    bound = sum(len(SpoolRecord(topics.detections, r.camera_id.encode(), r.to_json()).encode()) for r in during[:fits])
    publisher = EventPublisher(bootstrap, topics, tmp_path / "spool", spool_max_bytes=bound + 10,
                               delivery_timeout_ms=3000, probe_initial_s=0.2, probe_max_s=1.0)
    overflow_before = metrics.sample("nonsite_detector_spool_overflow_total")
    port = metrics.start_metrics_server(0, addr="127.0.0.1")
    try:
        before = [detection("cam-a" if n % 2 else "cam-b", n) for n in range(5)]
        for record in before:
            publisher.publish(record)
        assert publisher.flush(30)

        # Kafka stopped: nothing listens, the probe fails at once and events go to the spool.
        kafka.stop()
        started = time.monotonic()
        for record in during:
            publisher.publish(record)
        assert time.monotonic() - started < 2.0, "publish() blocked while Kafka was down"
        assert wait_until(lambda: publisher.spool_depth == fits, 20), \
            f"spool holds {publisher.spool_depth} records, expected {fits}"
        assert not publisher.flush(0.5), "flush() claimed delivery while Kafka was down"
        assert publisher.overflowed == 10
        assert metrics.sample("nonsite_detector_spool_overflow_total") - overflow_before == 10
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert f"nonsite_detector_spool_depth {float(fits)}" in scraped
        assert "nonsite_detector_kafka_up 0.0" in scraped
        logged = "".join(capfd.readouterr())
        dropped = during[fits:]
        assert logged.count("spool full, event dropped") == 10
        assert all(record.event_id in logged for record in dropped)

        kafka.start()
        assert publisher.flush(60), f"spool not drained after Kafka came back ({publisher.spool_depth} left)"
        assert publisher.spool_depth == 0 and publisher.kafka_up

        # A hung broker (SIGSTOP): connections open but nothing is acknowledged, so the sends expire
        # after delivery_timeout_ms; the futures say so and the records go to the spool.
        broker_pid = kafka.running_pids()[1]
        os.kill(broker_pid, signal.SIGSTOP)
        try:
            hung = [detection("cam-a" if n % 2 else "cam-b", n) for n in range(200, 206)]
            for record in hung:
                publisher.publish(record)
            assert wait_until(lambda: publisher.spool_depth == len(hung), 20), \
                f"expired sends not spooled ({publisher.spool_depth} of {len(hung)})"
            assert not publisher.kafka_up
        finally:
            os.kill(broker_pid, signal.SIGCONT)
        assert publisher.flush(60), f"spool not drained after the broker resumed ({publisher.spool_depth} left)"
        sent = before + during[:fits] + hung
        got = consume(bootstrap, topics.detections, len(sent))
    finally:
        publisher.close()
        kafka.stop()
    # At least once: the sends that expired while the broker hung had reached its socket, so the broker
    # wrote them when it resumed, and the spool sent them again.  Order is kept; consumers deduplicate
    # by event_id.  The clean outage (broker stopped) must not duplicate anything.
    got_ids = ids_by_camera(got, Detection.from_json)
    assert {camera: list(dict.fromkeys(ids)) for camera, ids in got_ids.items()} == expected_by_camera(sent)
    repeated = [event_id for ids in got_ids.values() for event_id in ids if ids.count(event_id) > 1]
    assert set(repeated) <= {r.event_id for r in hung}
    assert not {r.event_id for r in dropped} & {Detection.from_json(v).event_id for _, _, v in got}


@pytest.mark.kafka
def test_spool_left_by_a_run_without_kafka_is_drained_by_the_next(kafka_bootstrap, topic_factory, tmp_path):
    topics = Topics(detections=topic_factory("detections", partitions=2),
                    camera_status=topic_factory("camera-status"))
    spool_dir = tmp_path / "spool"
    nowhere = f"localhost:{free_port_block(1)}"  # nothing listens there
    first = EventPublisher(nowhere, topics, spool_dir, 1 << 20, probe_initial_s=0.1, probe_max_s=0.5)
    sent = [detection(f"cam-{n % 2}", n) for n in range(10)] + [status("cam-0", "offline")]
    for record in sent:
        first.publish(record)
    assert wait_until(lambda: first.spool_depth == len(sent), 10)
    first.close(timeout=0.5)
    assert first.spool_depth == len(sent)
    assert list(spool_dir.glob("seg-*.spool")), "nothing was written to disk"

    second = EventPublisher(kafka_bootstrap, topics, spool_dir, 1 << 20)
    try:
        assert second.spool_depth == len(sent)
        follow_up = detection("cam-0", 99)
        second.publish(follow_up)  # must queue behind the spooled records
        assert second.flush(30)
        assert second.spool_depth == 0
    finally:
        second.close()
    got = consume(kafka_bootstrap, topics.detections, 11)
    assert ids_by_camera(got, Detection.from_json) == expected_by_camera(sent[:10] + [follow_up])
    assert [CameraStatus.from_json(v).event_id for _, _, v in consume(kafka_bootstrap, topics.camera_status, 1)] \
        == [sent[-1].event_id]
    assert not list(spool_dir.glob("seg-*.spool"))


# ------------------------------------------------------------------ the spool alone (no Kafka)
def records(count: int, start: int = 0) -> list[SpoolRecord]:
    return [SpoolRecord("t", f"cam-{n % 3}".encode(), f'{{"event_id":"e{n}"}}'.encode())
            for n in range(start, start + count)]


def test_spool_keeps_order_across_segments_commits_and_reopen(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    assert spool.append(records(20)) == 20
    assert len(list(tmp_path.glob("seg-*.spool"))) > 3
    assert spool.peek(5) == records(5)
    spool.commit(7)
    spool.close()

    reopened = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    assert reopened.depth == 13
    assert reopened.peek(100) == records(13, start=7)
    assert reopened.append(records(2, start=20)) == 2
    reopened.commit(14)
    assert reopened.peek(100) == records(1, start=21)
    reopened.commit(1)
    assert reopened.depth == 0 and reopened.pending_bytes == 0
    assert not list(tmp_path.glob("seg-*.spool"))


def test_spool_cuts_a_torn_tail_and_refuses_beyond_its_bound(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(records(3))
    spool.close()
    segment = next(tmp_path.glob("seg-*.spool"))
    with open(segment, "ab") as handle:  # a crash in the middle of a write
        handle.write(records(1, start=3)[0].encode()[:-4])
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert reopened.peek(10) == records(3)
    assert reopened.append(records(1, start=4)) == 1
    assert Spool(tmp_path, max_bytes=1 << 20).peek(10) == records(3) + records(1, start=4)

    size = len(records(1)[0].encode())
    small = Spool(tmp_path / "small", max_bytes=size * 4)
    assert small.append(records(6)) == 4
    assert small.depth == 4 and small.pending_bytes == size * 4
    small.commit(1)
    assert small.append(records(2, start=6)) == 1
    assert small.peek(10) == records(3, start=1) + records(1, start=6)
