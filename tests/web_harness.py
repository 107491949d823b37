"""Helpers for the web tests: a running web app on the local Kafka with its own topics, record
factories, a stand-in for the case processor's replies, and screenshots (:func:`save_screenshot`, the one
capture code for the page tests' temporary folder and for the README's ``make screenshots``).

The web app runs in this process under uvicorn (a real HTTP server on a free port); records are
produced straight to its topics with kafka-python, so these tests do not need the stream worker.
An end-to-end test can start the real worker on the same ``WebHarness.city`` instead of ``reply``.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

import httpx
import uvicorn
from kafka import KafkaConsumer, KafkaProducer

from nonsite.config import City
from nonsite.kafka.admin import ensure_topics
from contract import (Alert, CameraStatus, CaseEvent, Record, DeadLetter, Evidence, Feedback,
                            Incident, Task, new_id, to_iso)
from nonsite.evidence import EvidenceStore
from web.app import create_app

PROJECT = Path(__file__).resolve().parents[1]
PASSWORDS = {"ops": "ops-demo", "sup": "sup-demo", "zhangwei": "off-demo", "lina": "off-demo",
             "wangqiang": "off-demo", "liuyang": "off-demo"}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def iso(moment: datetime) -> str:
    return to_iso(moment)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def city_with_topics(city: City, bootstrap: str, evidence_dir: Path) -> City:
    """A copy of the sample city whose topics are new and unique, so tests never see each other's records."""
    suffix = uuid.uuid4().hex[:8]
    topics = city.kafka.topics.model_copy(update={k: f"test.web.{k}.{suffix}" for k in city.kafka.topics.all()})
    kafka = city.kafka.model_copy(update={"bootstrap": bootstrap, "topics": topics, "partitions": 2})
    detector = city.detector.model_copy(update={"evidence_dir": str(evidence_dir)})
    system = city.system.model_copy(update={"kafka": kafka, "detector": detector})
    return city.model_copy(update={"system": system})


@dataclass
class WebHarness:
    city: City
    base_url: str
    server: uvicorn.Server
    thread: threading.Thread
    producer: KafkaProducer
    feedback: KafkaConsumer
    seen_feedback: list[Feedback] = field(default_factory=list)
    positions: dict[str, str] = field(default_factory=dict)  # feedback id -> topic/partition/offset

    @property
    def app(self):
        return self.server.config.app

    @property
    def evidence_dir(self) -> Path:
        return self.city.resolve_path(self.city.detector.evidence_dir)

    def publish(self, topic_kind: str, *records: Record) -> None:
        topic = getattr(self.city.kafka.topics, topic_kind)
        for record in records:
            key = getattr(record, "incident_id", None) or getattr(record, "camera_id", None) or new_id()
            self.producer.send(topic, record.to_json(), key=key.encode())
        self.producer.flush(10)

    def client(self, username: Optional[str] = None) -> httpx.Client:
        """An HTTP client, logged in as ``username`` (bearer token) unless None."""
        client = httpx.Client(base_url=self.base_url, timeout=20)
        if username:
            answer = client.post("/api/login", json={"username": username, "password": PASSWORDS[username]})
            assert answer.status_code == 200, answer.text
            client.headers["Authorization"] = f"Bearer {answer.json()['token']}"
            client.cookies.clear()
        return client

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def next_feedback(self, timeout: float = 10.0, **match: Any) -> Feedback:
        """The next Feedback on the feedback topic whose fields equal ``match``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in self.feedback.poll(timeout_ms=200).values():
                for message in batch:
                    feedback = Feedback.from_json(message.value)
                    self.positions[feedback.feedback_id] = f"{message.topic}/{message.partition}/{message.offset}"
                    self.seen_feedback.append(feedback)
            for feedback in self.seen_feedback:
                if all(getattr(feedback, k) == v for k, v in match.items()):
                    self.seen_feedback.remove(feedback)
                    return feedback
        raise AssertionError(f"no Feedback matching {match} within {timeout}s")

    def reply(self, feedback: Feedback, applied: bool, to_state: Optional[str], reason: str = "",
              from_state: Optional[str] = None, incident: Optional[Incident] = None,
              source: str = "position") -> CaseEvent:
        """Answer a feedback as the case processor does: a CaseEvent whose ``source`` is the feedback's
        ``topic/partition/offset`` (``source="id"``: ``...#<feedback_id>``, the other accepted form)."""
        where = self.positions[feedback.feedback_id]
        event = CaseEvent(event_id=new_id(), incident_id=feedback.incident_id, seq=int(time.time() * 1000) % 10**9,
                          at=to_iso(datetime.now(timezone.utc)), actor=feedback.actor, action=feedback.action,
                          from_state=from_state, to_state=to_state, applied=applied, reason=reason,
                          evidence=[e.sha256 for e in feedback.evidence], task_id=feedback.task_id,
                          source=where if source == "position" else f"{where}#{feedback.feedback_id}")
        if incident is not None:
            self.publish("incidents", incident)
        self.publish("case_events", event)
        return event

    def dead_letter(self, feedback: Feedback, reason: str) -> DeadLetter:
        """Answer a feedback as the processor does when it cannot use it at all: a dead letter with its position."""
        topic, partition, offset = self.positions[feedback.feedback_id].rsplit("/", 2)
        letter = DeadLetter(dead_letter_id=new_id(), topic=topic, partition=int(partition), offset=int(offset),
                            reason=reason, at=to_iso(datetime.now(timezone.utc)), raw=feedback.to_json().decode())
        self.publish("dead_letter", letter)
        return letter

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.producer.close(5)
        self.feedback.close()


def start_web(city: City, bootstrap: str, evidence_dir: Path, outcome_wait_s: float = 5.0,
              fresh_topics: bool = True, database: Optional[str] = None) -> WebHarness:
    """The web app for ``city`` on a free port; ``fresh_topics=False`` keeps the city's topics (to share them
    with a real stream worker) and only points the evidence store at ``evidence_dir``.  The system of
    record is ``database`` (a path or URL), else a SQLite file beside the evidence folder."""
    if fresh_topics:
        city = city_with_topics(city, bootstrap, evidence_dir)
        ensure_topics(bootstrap, list(city.kafka.topics.all().values()), 2, 1)
        database = database or evidence_dir.parent / f"history-{city.kafka.topics.incidents.rsplit('.', 1)[-1]}.sqlite"
    else:
        detector = city.detector.model_copy(update={"evidence_dir": str(evidence_dir)})
        city = city.model_copy(update={"system": city.system.model_copy(update={"detector": detector})})
        database = database or evidence_dir.parent / "history.sqlite"  # a restarted web finds what it recorded
    history = city.system.history.model_copy(update={"database": str(database)})
    city = city.model_copy(update={"system": city.system.model_copy(update={"history": history})})
    feedback = KafkaConsumer(city.kafka.topics.feedback, bootstrap_servers=bootstrap, group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=200)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    port = free_port()
    app = create_app(city, outcome_wait_s=outcome_wait_s)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=2, access_log=False))
    thread = threading.Thread(target=server.run, name="web-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the web app did not start")
        time.sleep(0.05)
    return WebHarness(city, f"http://127.0.0.1:{port}", server, thread, producer, feedback)


# ------------------------------------------------------------------ record factories
def now() -> datetime:
    return datetime.now(timezone.utc)


def incident(camera_id: str = "cam-01", scenario: str = "stray_dog", grid_id: str = "G01",
             state: str = "DISPATCHED", first_seen: Optional[datetime] = None, officer_id: Optional[str] = "O101",
             task_id: Optional[str] = None, deadline: Optional[datetime] = None, evidence: list[Evidence] = (),
             incident_id: Optional[str] = None, updated_at: Optional[datetime] = None, **extra: Any) -> Incident:
    first = first_seen or now()
    return Incident(incident_id=incident_id or new_id(), camera_id=camera_id, scenario=scenario, zone_id="z-road",
                    grid_id=grid_id, state=state, first_seen=iso(first), last_seen=iso(first),
                    updated_at=iso(updated_at or max(first, now())), cameras=[camera_id], evidence=list(evidence),
                    officer_id=officer_id, task_id=task_id,
                    deadline=iso(deadline or first + timedelta(minutes=60)), **extra)


def task_for(case: Incident, officer_id: str = "O101", status: str = "assigned",
             assigned_at: Optional[datetime] = None, task_id: Optional[str] = None) -> Task:
    assigned = assigned_at or datetime.fromisoformat(case.first_seen.replace("Z", "+00:00"))
    return Task(task_id=task_id or case.task_id or new_id(), incident_id=case.incident_id, officer_id=officer_id,
                grid_id=case.grid_id, scenario=case.scenario, assigned_at=iso(assigned),
                accept_by=iso(assigned + timedelta(minutes=15)), deadline=case.deadline or iso(assigned),
                status=status)


def dispatched_case(harness: WebHarness, officer_id: str = "O101", **fields: Any) -> tuple[Incident, Task]:
    """An incident with a task for ``officer_id``, published; returns both once the web has read them."""
    task_id = new_id()
    case = incident(officer_id=officer_id, task_id=task_id, **fields)
    task = task_for(case, officer_id, task_id=task_id)
    harness.publish("incidents", case)
    harness.publish("tasks", task)
    harness.wait_for(lambda: harness.app.state.store.task(task.task_id) is not None, what="task in the database")
    return case, task


def camera_status(camera_id: str, state: str, reason: str = "") -> CameraStatus:
    return CameraStatus(event_id=new_id(), camera_id=camera_id, state=state, observed_at=iso(now()), reason=reason)


def alert(kind: str, message: str, incident_id: Optional[str] = None, severity: str = "warning") -> Alert:
    return Alert(alert_id=new_id(), kind=kind, severity=severity, at=iso(now()), message=message,
                 incident_id=incident_id)


# ------------------------------------------------------------------ images and screenshots
def street_jpeg(label: str = "dog", width: int = 320, height: int = 180) -> bytes:
    """A small real JPEG: a photo from NONSITE_MEDIA when set (nicer screenshots), else a drawn street scene."""
    import cv2
    import numpy as np

    media = os.environ.get("NONSITE_MEDIA")
    source = Path(media) / "dog.jpg" if media else None
    if source is not None and source.exists():
        frame = cv2.resize(cv2.imread(str(source)), (width, height))
    else:
        frame = np.full((height, width, 3), (150, 150, 140), np.uint8)
        cv2.rectangle(frame, (0, height * 2 // 3), (width, height), (90, 90, 90), -1)
        cv2.circle(frame, (width // 2, height // 2), height // 6, (40, 80, 160), -1)
    cv2.rectangle(frame, (width // 3, height // 4), (width * 2 // 3, height * 3 // 4), (0, 0, 255), 2)
    cv2.putText(frame, label, (width // 3, height // 4 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 1)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return encoded.tobytes()


def stored_evidence(harness: WebHarness, label: str = "dog") -> Evidence:
    saved = EvidenceStore(harness.evidence_dir).put(street_jpeg(label), "annotated", "image/jpeg")
    return saved


def save_screenshot(page, folder: Path, name: str, full_page: bool = False) -> Path:
    """``folder/<name>.png``: the page as a PNG under 200 KB (fewer colours, scaled down if need be).

    The page tests pass a temporary folder; ``make screenshots`` runs them with ``--screenshots
    docs/screenshots``, so the README's pictures are these same captures, taken only on request."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.png"
    image = cv2.imdecode(np.frombuffer(page.screenshot(full_page=full_page), np.uint8), cv2.IMREAD_COLOR)
    scale = 1.0
    while True:
        resized = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        # fewer colours compress far better and keep text readable
        quantised = (resized // 8 * 8).astype(np.uint8)
        ok, data = cv2.imencode(".png", quantised, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if ok and len(data) < 200_000 or scale < 0.3:
            target.write_bytes(data.tobytes())
            break
        scale *= 0.85
    return target


def decode_sse(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    kind, data = "message", []
    for line in lines:
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            yield kind, json.loads("\n".join(data))
            kind, data = "message", []


# ------------------------------------------------------------------ a scripted month of cases for the reports
@dataclass(frozen=True)
class ScriptedCase:
    scenario: str
    grid: str
    officer: str
    camera: str
    day: int  # day of October 2026, local time (Asia/Shanghai)
    outcome: str  # closed | late | rejected | open | self_corrected
    reworked: bool = False
    minutes: int = 30  # dispatch -> close (filing -> close is one minute more: DISPATCH_DELAY)


SCRIPT = [
    ScriptedCase("stray_dog", "G01", "O101", "cam-01", 3, "closed", minutes=20),
    ScriptedCase("stray_dog", "G01", "O101", "cam-01", 3, "closed", minutes=40, reworked=True),
    ScriptedCase("stray_dog", "G01", "O101", "cam-01", 4, "late", minutes=90),
    ScriptedCase("stray_dog", "G01", "O101", "cam-02", 5, "closed", minutes=10),
    ScriptedCase("stray_dog", "G01", "O101", "cam-02", 5, "rejected"),
    ScriptedCase("stray_dog", "G01", "O101", "cam-01", 6, "open"),
    ScriptedCase("sidewalk_parking", "G02", "O201", "cam-03", 4, "closed", minutes=25),
    ScriptedCase("sidewalk_parking", "G02", "O201", "cam-03", 6, "self_corrected", minutes=5),
    ScriptedCase("sidewalk_parking", "G02", "O201", "cam-04", 7, "open"),
    ScriptedCase("sidewalk_parking", "G02", "O201", "cam-04", 7, "open"),
]
DISPATCH_DELAY = timedelta(minutes=1)
SCRIPT_STATES = {"closed": "CLOSED", "late": "CLOSED", "rejected": "REJECTED", "open": "ARRIVED",
                 "self_corrected": "SELF_CORRECTED"}


def expected_figures(cases: list[ScriptedCase]) -> dict:
    """What the script implies, counted the plain way: closure = closed / (filed - false alarms)."""
    filed = len(cases)
    false_alarms = sum(c.outcome == "rejected" for c in cases)
    closed = [c for c in cases if c.outcome in ("closed", "late", "self_corrected")]
    due = filed - false_alarms
    on_time = sum(c.outcome != "late" for c in closed)
    return {"filed": filed, "due": due, "closed": len(closed), "on_time": on_time, "false_alarms": false_alarms,
            "reworked": sum(c.reworked for c in cases), "closure_rate": round(len(closed) / due, 4),
            "on_time_rate": round(on_time / due, 4), "mean_minutes_to_close":
                round(sum(c.minutes + DISPATCH_DELAY.total_seconds() / 60 for c in closed) / len(closed), 1)}


def publish_script(harness: WebHarness, cases: list[ScriptedCase] = SCRIPT) -> None:
    """Incidents, tasks and closing case events as the processor would publish them, at 10:00 local time."""
    from zoneinfo import ZoneInfo

    shanghai = ZoneInfo("Asia/Shanghai")
    for index, case in enumerate(cases):
        seen = datetime(2026, 10, case.day, 10, index, tzinfo=shanghai).astimezone(timezone.utc)
        dispatched = seen + DISPATCH_DELAY
        deadline = dispatched + timedelta(minutes=60)
        closed_at = dispatched + timedelta(minutes=case.minutes)
        state = SCRIPT_STATES[case.outcome]
        record = incident(camera_id=case.camera, scenario=case.scenario, grid_id=case.grid, state=state,
                          first_seen=seen, officer_id=case.officer, task_id=new_id(), deadline=deadline,
                          updated_at=closed_at if state in ("CLOSED", "SELF_CORRECTED") else dispatched,
                          reopen_count=int(case.reworked))
        harness.publish("incidents", record)
        harness.publish("tasks", task_for(record, case.officer, assigned_at=dispatched))
        if case.outcome in ("closed", "late") and index % 2 == 0:  # half close through the audit log
            harness.publish("case_events", CaseEvent(
                event_id=new_id(), incident_id=record.incident_id, seq=7, at=iso(closed_at), actor="camera",
                action="verify", from_state="VERIFIED", to_state="CLOSED", source="test"))
    harness.wait_for(lambda: count_rows(harness, "tasks") >= len(cases), what="scripted cases in the database")


def count_rows(harness: WebHarness, table: str) -> int:
    from sqlalchemy import func, select

    from history import schema

    with harness.app.state.store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(schema.METADATA.tables[table])).scalar()


def log_in(browser, base_url: str, username: str, phone: bool = False, height: int = 820):
    """A page of ``browser`` logged in as ``username`` (a phone's viewport with ``phone``), after the login page."""
    size = {"width": 390, "height": 844} if phone else {"width": 1280, "height": height}
    context = browser.new_context(viewport=size, device_scale_factor=1, locale="zh-CN",
                                  timezone_id="Asia/Shanghai", is_mobile=phone, has_touch=phone)
    page = context.new_page()
    page.goto(f"{base_url}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORDS[username])
    page.click("#submit")
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def worker_and_web(kafka_bootstrap: str, tmp: Path, tag: str, outcome_wait_s: float, **stream: Any
                   ) -> Iterator[tuple["WebHarness", Any]]:
    """A real worker and web app on a copy of configs/ with topics and app id of their own (``stream``: the
    worker's settings changed), stopped when the generator is closed; for module fixtures."""
    import shutil

    import yaml

    from contract import new_id
    from nonsite.config import load_city
    from stream.runtime.topics import create_topics
    from stream_support import WorkerProcess

    folder = tmp / "configs"
    shutil.copytree(PROJECT / "configs", folder)
    settings = yaml.safe_load((folder / "nonsite.yaml").read_text(encoding="utf-8"))
    unique = f"{tag}{new_id()[:8]}"
    settings["kafka"]["topics"] = {k: f"{unique}.{k.replace('_', '-')}" for k in settings["kafka"]["topics"]}
    settings["stream"].update({"app_id": f"nonsite-{unique}", "data_dir": str(tmp / "worker"), **stream})
    (folder / "nonsite.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    city = load_city(folder)
    create_topics(city)
    worker = WorkerProcess(city, tmp).start()
    web = start_web(city, kafka_bootstrap, tmp / "evidence", outcome_wait_s=outcome_wait_s, fresh_topics=False)
    try:
        yield web, worker
    finally:
        web.stop()
        worker.stop()
