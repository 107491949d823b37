"""Helpers for the stream tests: an isolated test city, producers, topic readers, a worker subprocess."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Optional

import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from nonsite.config import ZONE_KINDS, City, load_city
from stream.runtime.topics import cases_topic_name, create_topics, partition_for
from stream.cli import read_table_view
from stream.domain.intake import Envelope
from contract import CameraStatus, Detection, Evidence, Feedback, new_id, to_iso

PROJECT = Path(__file__).resolve().parents[1]
BASE_LAT, BASE_LON = 30.60, 104.00
ONE_KM_LAT = 0.009


def test_cameras_and_grids(grids: Iterable[str]) -> tuple[dict, dict]:
    """One camera per grid, a kilometre apart; grid ``GX`` has two cameras watching one spot from 10 m."""
    cameras, officers = [], []
    zone = {"id": "z1", "kind": "sidewalk", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}
    others = [{"id": f"z-{kind}", "kind": kind, "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}
              for kind in ZONE_KINDS if kind != "sidewalk"]  # scenarios need every zone kind to exist
    names = list(grids)
    for index, grid in enumerate(names):
        lat = BASE_LAT + index * ONE_KM_LAT
        cameras.append({"id": f"cam-{grid}", "name": f"camera of {grid}", "source": "none.mp4", "grid": grid,
                        "location": {"lat": lat, "lon": BASE_LON, "address": f"street {grid}"},
                        "zones": [zone] + others})
        if grid == "GX":
            twin_zone = dict(zone, anchor={"lat": lat + 0.00009, "lon": BASE_LON})  # ~10 m north
            cameras.append({"id": f"cam-{grid}-b", "name": f"second camera of {grid}", "source": "none.mp4",
                            "grid": grid, "location": {"lat": lat + 0.0002, "lon": BASE_LON}, "zones": [twin_zone]})
        shifts = [{"days": [], "start": "08:00", "end": "09:00"}] if grid == "GN" else []
        for n in (1, 2):
            officers.append({"id": f"{grid}-O{n}", "name": f"officer {n} of {grid}", "grid": grid, "shifts": shifts})
    grids_file = {"teams": [{"id": "T1", "name": "team"}],
                  "grids": [{"id": g, "name": f"grid {g}", "team": "T1"} for g in names], "officers": officers}
    return {"cameras": cameras}, grids_file


def make_city(tmp: Path, grids: Iterable[str], **stream: object) -> City:
    """A config folder in ``tmp`` with unique topics / app id and short timers."""
    folder = tmp / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT / "configs" / "scenarios.yaml", folder / "scenarios.yaml")
    cameras, grids_file = test_cameras_and_grids(grids)
    (folder / "cameras.yaml").write_text(yaml.safe_dump(cameras, allow_unicode=True))
    (folder / "grids.yaml").write_text(yaml.safe_dump(grids_file, allow_unicode=True))
    tag = uuid.uuid4().hex[:8]
    system = yaml.safe_load((PROJECT / "configs" / "nonsite.yaml").read_text())
    system["kafka"]["topics"] = {k: f"t{tag}.{k.replace('_', '-')}" for k in system["kafka"]["topics"]}
    system["kafka"]["partitions"] = 4
    settings = {"app_id": f"nonsite-test-{tag}", "tick_s": 0.5, "acceptance_minutes": 0.05, "verify_grace_s": 1.0,
                "dedup_window_s": 600, "cross_camera_radius_m": 30, "commit_interval_s": 0.5,
                "data_dir": str(tmp / "worker")}
    if os.environ.get("NONSITE_TEST_STORE"):  # e.g. rocksdb:// to run the stream tests on RocksDB
        settings["store"] = os.environ["NONSITE_TEST_STORE"]
    settings.update(stream)
    system["stream"].update(settings)
    (folder / "nonsite.yaml").write_text(yaml.safe_dump(system, allow_unicode=True))
    city = load_city(folder)
    create_topics(city)
    return city


# ------------------------------------------------------------------ producing inputs
class Inputs:
    """Produces contract records with kafka-python, keyed like the detector does (camera id)."""

    def __init__(self, city: City):
        self.city = city
        self.producer = KafkaProducer(bootstrap_servers=city.kafka.bootstrap, acks="all", linger_ms=2)

    def _send(self, topic: str, key: str, value: bytes) -> None:
        self.producer.send(topic, key=key.encode(), value=value).get(timeout=30)

    def detection(self, camera: str, kind: str = "start", violation: str = "v1", scenario: str = "sidewalk_parking",
                  zone: str = "z1", at: Optional[float] = None, first_seen: Optional[float] = None,
                  plate: Optional[str] = None, confidence: float = 0.8) -> Detection:
        at = time.time() if at is None else at
        d = Detection(event_id=new_id(), kind=kind, violation_id=f"{camera}/{violation}/{scenario}", camera_id=camera,
                      scenario=scenario, zone_id=zone, object_class="car", track_id=1, confidence=confidence,
                      bbox=[0.1, 0.5, 0.3, 0.9], first_seen=to_iso(first_seen or at), observed_at=to_iso(at),
                      dwell_s=150.0, plate=plate,
                      evidence=[Evidence(kind="annotated", sha256=uuid.uuid4().hex * 2, uri="file:///e.jpg")])
        self._send(self.city.kafka.topics.detections, camera, d.to_json())
        return d

    def status(self, camera: str, active: list[str], at: Optional[float] = None, state: str = "online") -> None:
        at = time.time() if at is None else at
        s = CameraStatus(event_id=new_id(), camera_id=camera, state=state, observed_at=to_iso(at),
                         last_frame_at=to_iso(at), last_inference_at=to_iso(at), active=active)
        self._send(self.city.kafka.topics.camera_status, camera, s.to_json())

    def feedback(self, incident_id: str, action: str, actor: str, task_id: Optional[str] = None,
                 reason: str = "", target: Optional[str] = None, at: Optional[float] = None) -> None:
        f = Feedback(feedback_id=new_id(), incident_id=incident_id, action=action, actor=actor,
                     at=to_iso(time.time() if at is None else at), task_id=task_id, reason=reason,
                     target_officer=target)
        self._send(self.city.kafka.topics.feedback, incident_id, f.to_json())

    def raw(self, topic: str, value: bytes, key: str = "junk") -> None:
        self._send(topic, key, value)

    def tick(self, district: str, at: float) -> None:
        """What the worker's clock timer sends: tests inject time through it."""
        env = Envelope("tick", district, "tick", -1, {"now": to_iso(at)})
        self.producer.send(cases_topic_name(self.city), key=district.encode(), value=env.to_bytes(),
                           partition=partition_for(district, self.city.kafka.partitions)).get(timeout=30)

    def close(self) -> None:
        self.producer.close(timeout=10)


# ------------------------------------------------------------------ reading outputs
class Reader:
    """Everything on one topic from the beginning, decoded as JSON, polled on demand."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        partitions = self.consumer.partitions_for_topic(topic) or set()
        self.tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(self.tps)
        self.consumer.seek_to_beginning(*self.tps)
        self.items: list[dict] = []

    def poll(self) -> list[dict]:
        for records in self.consumer.poll(timeout_ms=200).values():
            for record in records:
                self.items.append(json.loads(record.value) if record.value is not None else None)
        return self.items

    def drain(self, quiet_s: float = 1.0) -> list[dict]:
        """Read until everything up to the current end offsets is in."""
        ends = self.consumer.end_offsets(self.tps)
        deadline = time.monotonic() + 30
        while any(self.consumer.position(tp) < ends[tp] for tp in self.tps) and time.monotonic() < deadline:
            self.poll()
        return self.items

    def wait_for(self, predicate: Callable[[list[dict]], object], timeout: float = 60.0, what: str = "") -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate(self.poll())
            if result:
                return result
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or 'a condition'} on {self.topic}; "
                             f"last items: {self.items[-5:]}")

    def close(self) -> None:
        self.consumer.close()


def events_of(items: list[dict], incident_id: str) -> list[dict]:
    return sorted({e["event_id"]: e for e in items if e and e["incident_id"] == incident_id}.values(),
                  key=lambda e: e["seq"])


def states_of(items: list[dict], incident_id: str) -> list[str]:
    return [e["to_state"] for e in events_of(items, incident_id) if e["applied"]]


def read_changelog(city: City, view: str) -> dict:
    """One view of the worker's state table, as its changelog in Kafka has it (latest value per key)."""
    return read_table_view(city, view)


# ------------------------------------------------------------------ the worker process
class WorkerProcess:
    """``python -m nonsite.cli worker`` for a test city, logs in a file."""

    def __init__(self, city: City, tmp: Path, name: str = "worker"):
        self.city, self.tmp, self.name = city, tmp, name
        self.process: Optional[subprocess.Popen] = None
        self.log_path = tmp / f"{name}.log"

    def start(self) -> "WorkerProcess":
        from conftest import free_port_block

        env = dict(os.environ, NONSITE_KAFKA_BOOTSTRAP=self.city.kafka.bootstrap, PYTHONUNBUFFERED="1")
        self.web_port = getattr(self, "web_port", None) or free_port_block(1)  # a restart keeps its port
        command = [sys.executable, "-m", "nonsite.cli", "--config", str(self.city.root)] + (["--log-level", os.environ["NONSITE_TEST_WORKER_LOG"]] if os.environ.get("NONSITE_TEST_WORKER_LOG") else []) + ["worker",
                   "--web-port", str(self.web_port), "--data-dir", str(self.tmp / f"{self.name}-data")]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def running_system(tmp: Path, grids: Iterable[str], outputs: Iterable[str], **stream: object
                   ) -> Iterator[tuple[City, WorkerProcess, Inputs, dict[str, Reader]]]:
    """A test city with a worker running, a producer of inputs and a reader per output topic role."""
    city = make_city(tmp, grids, **stream)
    worker = WorkerProcess(city, tmp).start()
    inputs = Inputs(city)
    readers = {name: Reader(city.kafka.bootstrap, getattr(city.kafka.topics, name)) for name in outputs}
    try:
        yield city, worker, inputs, readers
    finally:
        worker.stop()
        inputs.close()
        for reader in readers.values():
            reader.close()
