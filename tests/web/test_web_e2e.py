"""End to end with the real stream worker: a detection becomes an incident on the wall, the officer
works the case through the web API, the worker answers each action, the camera closes it, and the
report counts it.  Only the detector is replaced by records produced to the detections topic."""
from __future__ import annotations

import time
from typing import Iterator

import msgspec
import pytest

from contract import CameraStatus, Detection, Evidence, new_id, to_iso
from web_harness import WebHarness, worker_and_web

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def e2e(kafka_bootstrap: str, tmp_path_factory) -> Iterator[tuple[WebHarness, object]]:
    yield from worker_and_web(kafka_bootstrap, tmp_path_factory.mktemp("e2e"), "e2e", outcome_wait_s=10.0,
                              tick_s=0.5, verify_grace_s=1.0, commit_interval_s=0.5)


def test_a_case_from_detection_to_closure_through_the_web(e2e) -> None:
    web, worker = e2e
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=web.city.kafka.bootstrap, acks="all")
    now = time.time()
    detection = Detection(event_id=new_id(), kind="start", violation_id="cam-01/7/stray_dog", camera_id="cam-01",
                          scenario="stray_dog", zone_id="z-road", object_class="dog", track_id=7, confidence=0.9,
                          bbox=[0.3, 0.4, 0.5, 0.8], first_seen=to_iso(now - 130), observed_at=to_iso(now),
                          dwell_s=130.0, evidence=[Evidence(kind="annotated", sha256="ab" * 32, uri="ab/x.jpg")])
    producer.send(web.city.kafka.topics.detections, detection.to_json(), key=b"cam-01").get(30)

    ops = web.client("ops")
    case = web.wait_for(lambda: next((i for i in ops.get("/api/incidents").json()
                                      if i["camera_id"] == "cam-01" and i["officer_id"]), None),
                        timeout=90, what=f"the worker's incident on the wall\n{worker.log_tail()}")
    officer = {"O101": "zhangwei", "O102": "lina"}[case["officer_id"]]
    client = web.client(officer)
    task = web.wait_for(lambda: next((t for t in client.get("/api/my/tasks").json()
                                      if t["incident_id"] == case["incident_id"]), None), what="the task")

    for action, state in (("accept", "ACCEPTED"), ("arrive", "ARRIVED"), ("resolve", "RESOLVED")):
        answer = client.post(f"/api/tasks/{task['task_id']}/actions", json={"action": action, "note": "e2e"})
        assert answer.status_code == 200, (action, answer.text, worker.log_tail())
        assert answer.json()["status"] == "applied" and answer.json()["to_state"] == state

    refused = client.post(f"/api/tasks/{task['task_id']}/actions", json={"action": "accept"})
    assert refused.status_code == 409 and refused.json()["status"] == "refused" and refused.json()["reason"]

    clear = CameraStatus(event_id=new_id(), camera_id="cam-01", state="online", observed_at=to_iso(time.time() + 2),
                         last_frame_at=to_iso(time.time() + 2), last_inference_at=to_iso(time.time() + 2), active=[])
    closed = None
    deadline = time.monotonic() + 60
    while closed is None and time.monotonic() < deadline:
        clear = msgspec.structs.replace(clear, event_id=new_id(), observed_at=to_iso(time.time()),
                                        last_inference_at=to_iso(time.time()))
        producer.send(web.city.kafka.topics.camera_status, clear.to_json(), key=b"cam-01").get(30)
        time.sleep(1)
        shown = ops.get(f"/api/incidents/{case['incident_id']}").json()
        closed = shown if shown["state"] == "CLOSED" else None
    assert closed is not None, worker.log_tail()
    report = web.client("sup").get("/api/reports/summary", params={"by": "officer"}).json()
    assert report["total"]["closed"] == 1 and report["total"]["closure_rate"] == 1.0
    producer.close()
