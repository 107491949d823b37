"""Detector scale-out (issue 11, item 3): detectors share the cameras as one Kafka consumer group.

Real Kafka, the real model on a real photo made into a video, ``nonsite detect --group`` processes.  Two
detectors share four cameras; one is killed with SIGKILL and the survivor takes its cameras within the bound
(session timeout + 5 s) and finds their violations again; what the killed one published is all in Kafka or in
its spool; a third detector joining takes its share.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from contract import Detection
from detector.samples import DOG_REGION, build_still_video
from detector.spool import Spool
from detector_group import DetectorProcess, TopicRecords, group_city, wait_until
from nonsite.config import load_city
from nonsite.kafka.admin import create_city_topics

pytestmark = [pytest.mark.kafka, pytest.mark.model, pytest.mark.slow]
CAMERAS = {f"cam-f{n}" for n in range(1, 5)}
SESSION_TIMEOUT_S = 6.0  # the brokers' least (group.min.session.timeout.ms)
TAKEOVER_BOUND_S = SESSION_TIMEOUT_S + 5.0  # docs/cameras.md


def test_a_killed_detectors_cameras_move_to_the_survivor_and_a_new_one_takes_its_share(
        tmp_path: Path, weights_path, media_dir, kafka_bootstrap: str):
    video = build_still_video(media_dir / "dog.jpg", tmp_path / "dog.mp4", hold_s=900, gone_s=1,
                              removed="paint", regions=[DOG_REGION])
    config = group_city(tmp_path, video, cameras=len(CAMERAS), dwell_s=4, session_timeout_s=SESSION_TIMEOUT_S,
                        shards=4)
    city = load_city(config)
    create_city_topics(city, kafka_bootstrap)
    env = {"NONSITE_WEIGHTS": str(weights_path), "NONSITE_KAFKA_BOOTSTRAP": kafka_bootstrap}
    a, b = (DetectorProcess(config, tmp_path, name, env).start() for name in ("a", "b"))
    detections = TopicRecords(kafka_bootstrap, city.kafka.topics.detections, Detection.from_json)
    c = None
    try:
        everyone = (a, b)
        wait_until(lambda: a.cameras_up() | b.cameras_up() == CAMERAS and len(a.cameras_up()) == 2
                   and len(b.cameras_up()) == 2, 180, "two cameras read by each detector", everyone)
        assert not a.cameras_up() & b.cameras_up()
        starts = lambda: {d.camera_id: d for d in detections.poll() if d.kind == "start"}  # noqa: E731
        wait_until(lambda: set(starts()) == CAMERAS, 120, "a violation start on every camera", everyone)
        victim, survivor = a, b
        theirs = victim.cameras_up()
        before_kill = {d.violation_id for d in detections.poll()}

        killed_at = time.monotonic()
        victim.kill()
        taken_at = wait_until(lambda: survivor.cameras_up() == CAMERAS, 60, "the survivor reading every camera",
                              [survivor])
        takeover_s = taken_at - killed_at
        print(f"takeover {takeover_s:.1f} s (session timeout {SESSION_TIMEOUT_S:g} s)")
        assert takeover_s <= TAKEOVER_BOUND_S, f"took {takeover_s:.1f} s\n{survivor.log_tail()}"
        # the survivor finds the killed one's violations again (a new violation, merged with the open case by
        # the worker's dedup: same camera, same spot)
        found_again = lambda: {d.camera_id for d in detections.poll()  # noqa: E731
                               if d.kind == "start" and d.violation_id not in before_kill}
        wait_until(lambda: found_again() >= theirs, 60, "new starts of the killed detector's cameras", [survivor])
        # nothing the killed one made is lost: every record is in Kafka, or in its spool for its next start
        assert Spool(victim.spool, max_bytes=1 << 30).depth == 0

        c = DetectorProcess(config, tmp_path, "c", env).start()
        wait_until(lambda: len(c.cameras_up()) == 2 and survivor.cameras_up() == CAMERAS - c.cameras_up(), 180,
                   "the new detector taking two cameras", (survivor, c))
        time.sleep(3)  # and it stays so: no camera read twice
        assert c.cameras_up() | survivor.cameras_up() == CAMERAS
        assert not c.cameras_up() & survivor.cameras_up()
        took = survivor.terminate()
        assert took <= 10, f"SIGTERM took {took:.1f} s"
        wait_until(lambda: c.cameras_up() == CAMERAS, 20, "a stopped detector's cameras moving at once", [c])
    finally:
        for process in (a, b, c):
            if process is not None:
                process.kill()
        detections.close()
