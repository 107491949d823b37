"""``nonsite detect`` stops when told to, even while Kafka is down (issue 11, item 5): SIGTERM ends it within 10 s,
in a consumer group too, and what Kafka has not acknowledged is kept in its spool for the next start."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from detector.samples import DOG_REGION, build_still_video
from detector.spool import Spool
from detector_group import DetectorProcess, group_city, wait_until
from nonsite.config import load_city
from nonsite.kafka.admin import create_city_topics
from shutdown_support import STOP_WITHIN_S, own_broker, sigterm_took

pytestmark = [pytest.mark.kafka, pytest.mark.model, pytest.mark.slow]


def test_sigterm_stops_the_detector_within_10_s_while_kafka_is_down_and_keeps_its_events(
        tmp_path: Path, weights_path, media_dir, monkeypatch):
    video = build_still_video(media_dir / "dog.jpg", tmp_path / "dog.mp4", hold_s=900, gone_s=1,
                              removed="paint", regions=[DOG_REGION])
    with own_broker(tmp_path, monkeypatch) as broker:
        config = group_city(tmp_path, video, cameras=2, dwell_s=60, session_timeout_s=6, shards=2)
        city = load_city(config)
        create_city_topics(city, city.kafka.bootstrap)
        env = {"NONSITE_WEIGHTS": str(weights_path), "NONSITE_KAFKA_BOOTSTRAP": city.kafka.bootstrap}
        detector = DetectorProcess(config, tmp_path, "detector", env).start()
        try:
            wait_until(lambda: len(detector.cameras_up()) == 2, 180, "both cameras read", [detector])
            broker.stop_node(1, hard=True)
            # statuses every 2 s go to the spool once the publisher has found Kafka gone
            spooled = lambda: "nonsite_detector_spool_depth 0.0" not in detector.metrics()  # noqa: E731
            wait_until(spooled, 60, "events spooled while Kafka is down", [detector])
            time.sleep(3)  # the group consumer and the publisher retry meanwhile
            took = sigterm_took(detector.process)
            assert took <= STOP_WITHIN_S, f"stopped after {took:.1f} s:\n{detector.log_tail()}"
            assert detector.process.returncode == 0, detector.log_tail()
            kept = Spool(detector.spool, max_bytes=1 << 30)
            assert kept.depth > 0  # sent at the next start
            assert {record.topic for record in kept.peek(1000)} == {city.kafka.topics.camera_status}
            print(f"SIGTERM with Kafka down: stopped in {took:.1f} s, {kept.depth} records kept in the spool")
        finally:
            detector.kill()
