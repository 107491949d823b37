"""End to end on the real local Kafka: one worker subprocess, each scenario in its own grid.

Timers are short (tick 0.5 s, acceptance 12 s, verification grace 1 s); the deadline test moves
its district's clock forward by publishing a tick, exactly what the worker's clock timer sends.
"""
from __future__ import annotations

import csv
import io
import subprocess
import sys
import time

import msgspec
import pytest

from stream.domain.casefile import CaseFile, replay
from contract import CaseEvent
from stream_support import PROJECT, Inputs, events_of, read_changelog, running_system, states_of

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
GRIDS = ["G1", "G2", "G3", "G4", "G5", "G6", "G7", "GX", "GN"]


@pytest.fixture(scope="module")
def system(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):
    outputs = ("case_events", "incidents", "tasks", "alerts", "dead_letter")
    with running_system(tmp_path_factory.mktemp("stream-flow"), GRIDS, outputs, acceptance_minutes=0.2) as system:
        yield system


def first_incident(readers, camera: str, timeout: float = 90.0) -> dict:
    """The first incident snapshot of a camera, once it is dispatched (or queued)."""
    def found(items):
        return next((i for i in items if camera in i["cameras"]), None)
    return readers["incidents"].wait_for(found, timeout, f"an incident of {camera}")


def wait_state(readers, incident_id: str, state: str, timeout: float = 60.0) -> list[str]:
    readers["case_events"].wait_for(lambda items: state in states_of(items, incident_id), timeout,
                                    f"{incident_id} -> {state}")
    return states_of(readers["case_events"].items, incident_id)


def latest(items: list[dict], key: str, value: str) -> dict:
    return [i for i in items if i.get(key) == value][-1]


def current_task(readers, incident_id: str, attempt: int = 1) -> dict:
    return readers["tasks"].wait_for(
        lambda items: next((t for t in items if t["incident_id"] == incident_id and t["attempt"] == attempt), None),
        60, f"task {attempt} of {incident_id}")


def officer_steps(inputs: Inputs, incident_id: str, task: dict, steps=("accept", "arrive", "resolve")) -> None:
    for action in steps:
        inputs.feedback(incident_id, action, task["officer_id"], task_id=task["task_id"])


def test_detection_to_dispatch_to_camera_verified_closure(system):
    city, worker, inputs, readers = system
    inputs.detection("cam-G1", "start", plate="川A00001")
    incident = first_incident(readers, "cam-G1")
    incident_id = incident["incident_id"]
    task = current_task(readers, incident_id)
    assert task["officer_id"] in ("G1-O1", "G1-O2") and task["first_offence"] is True
    assert "首违不罚" in task["note"]
    inputs.detection("cam-G1", "update")
    officer_steps(inputs, incident_id, task)
    wait_state(readers, incident_id, "RESOLVED")
    inputs.status("cam-G1", active=[])  # the camera's periodic re-check no longer sees it
    states = wait_state(readers, incident_id, "CLOSED")
    assert states == ["DETECTED", "DISPATCHED", "ACCEPTED", "ARRIVED", "RESOLVED", "VERIFIED", "CLOSED"]
    verify = [e for e in events_of(readers["case_events"].items, incident_id) if e["to_state"] == "VERIFIED"][0]
    assert verify["actor"] == "camera" and "camera sees no violation" in verify["reason"]
    snapshot = readers["incidents"].wait_for(
        lambda items: latest(items, "incident_id", incident_id)["state"] == "CLOSED" and items, 30, "closed snapshot")
    final = latest(snapshot, "incident_id", incident_id)
    assert final["detections"] == 2 and final["first_offence"] is True and final["officer_id"] == task["officer_id"]
    done = readers["tasks"].wait_for(
        lambda items: [t for t in items if t["task_id"] == task["task_id"] and t["status"] == "done"], 30, "task done")
    assert done


def test_violation_still_there_after_resolution_reopens_and_redispatches(system):
    city, worker, inputs, readers = system
    inputs.detection("cam-G2", "start")
    incident_id = first_incident(readers, "cam-G2")["incident_id"]
    task = current_task(readers, incident_id)
    officer_steps(inputs, incident_id, task)
    wait_state(readers, incident_id, "RESOLVED")
    time.sleep(city.stream.verify_grace_s + 0.5)
    inputs.status("cam-G2", active=["sidewalk_parking/z1"])  # still parked there after the grace period
    states = readers["case_events"].wait_for(
        lambda items: states_of(items, incident_id)[5:] == ["REOPENED", "DISPATCHED"] and states_of(items, incident_id),
        60, "reopen and re-dispatch")
    assert states[:5] == ["DETECTED", "DISPATCHED", "ACCEPTED", "ARRIVED", "RESOLVED"]
    second = current_task(readers, incident_id, attempt=2)
    assert second["task_id"] != task["task_id"]
    final = readers["incidents"].wait_for(
        lambda items: (s := latest(items, "incident_id", incident_id))["reopen_count"] == 1 and s, 30, "reopen count")
    assert final["state"] == "DISPATCHED" and final["task_id"] == second["task_id"]
    alerts = readers["alerts"].wait_for(
        lambda items: [a for a in items if a["incident_id"] == incident_id and a["kind"] == "reopened"], 30, "alert")
    assert alerts


def test_task_not_accepted_in_time_is_reassigned(system):
    city, worker, inputs, readers = system
    inputs.detection("cam-G3", "start")
    incident_id = first_incident(readers, "cam-G3")["incident_id"]
    first = current_task(readers, incident_id)
    second = current_task(readers, incident_id, attempt=2)  # nobody accepted within the window
    assert second["officer_id"] != first["officer_id"] and second["officer_id"].startswith("G3-")
    superseded = readers["tasks"].wait_for(
        lambda items: [t for t in items if t["task_id"] == first["task_id"] and t["status"] == "superseded"], 30,
        "superseded first task")
    assert superseded
    reassign = readers["case_events"].wait_for(
        lambda items: [e for e in events_of(items, incident_id) if e["action"] == "reassign"], 30, "reassign")[0]
    assert reassign["actor"] == "timer" and "not accepted" in reassign["reason"]
    assert reassign["from_state"] == "DISPATCHED" and reassign["to_state"] == "DISPATCHED"


def test_deadline_passed_escalates_with_alert(system):
    city, worker, inputs, readers = system
    inputs.detection("cam-G4", "start")
    incident_id = first_incident(readers, "cam-G4")["incident_id"]
    task = current_task(readers, incident_id)
    inputs.feedback(incident_id, "accept", task["officer_id"], task_id=task["task_id"])
    wait_state(readers, incident_id, "ACCEPTED")
    sla = city.scenario("sidewalk_parking").sla_minutes
    inputs.tick("G4", time.time() + sla * 60 + 5)  # the district's clock passes the deadline
    states = wait_state(readers, incident_id, "ESCALATED")
    assert states[-1] == "ESCALATED"
    alert = readers["alerts"].wait_for(
        lambda items: [a for a in items if a["incident_id"] == incident_id and a["kind"] == "escalated"], 30, "alert")
    assert alert[0]["severity"] == "critical"
    inputs.feedback(incident_id, "arrive", task["officer_id"], task_id=task["task_id"])  # work goes on
    assert wait_state(readers, incident_id, "ARRIVED")[-1] == "ARRIVED"


def test_recurrence_after_closure_opens_a_linked_incident(system):
    city, worker, inputs, readers = system
    inputs.detection("cam-G5", "start", violation="first", plate="川A55555")
    first_id = first_incident(readers, "cam-G5")["incident_id"]
    task = current_task(readers, first_id)
    officer_steps(inputs, first_id, task)
    wait_state(readers, first_id, "RESOLVED")
    inputs.detection("cam-G5", "end", violation="first")
    wait_state(readers, first_id, "CLOSED")
    inputs.detection("cam-G5", "start", violation="again")
    second = readers["incidents"].wait_for(
        lambda items: next((i for i in items if "cam-G5" in i["cameras"] and i["incident_id"] != first_id), None),
        60, "the recurrence")
    assert second["recurrence_of"] == first_id
    assert second["prior_offences"] == 1 and second["first_offence"] is False
    task2 = current_task(readers, second["incident_id"])
    assert task2["first_offence"] is False and "回潮" in task2["note"]


def test_two_cameras_seeing_one_spot_make_one_incident(system):
    city, worker, inputs, readers = system
    inputs.detection("cam-GX", "start", violation="near")
    incident_id = first_incident(readers, "cam-GX")["incident_id"]
    inputs.detection("cam-GX-b", "start", violation="same-car-other-view")
    merged = readers["incidents"].wait_for(
        lambda items: (s := latest(items, "incident_id", incident_id))["detections"] == 2 and s, 60, "merge")
    assert sorted(merged["cameras"]) == ["cam-GX", "cam-GX-b"]
    detected = [e for e in readers["case_events"].drain() if e["action"] == "detect" and e["incident_id"].startswith("GX.")]
    assert len(detected) == 1


def test_no_officer_on_duty_queues_and_alerts(system):
    city, worker, inputs, readers = system
    inputs.detection("cam-GN", "start")
    incident = first_incident(readers, "cam-GN")
    assert incident["state"] == "DETECTED" and incident["officer_id"] is None
    alert = readers["alerts"].wait_for(
        lambda items: [a for a in items if a["incident_id"] == incident["incident_id"] and a["kind"] == "no_officer"],
        30, "no-officer alert")
    assert "GN" in alert[0]["message"]
    assert not [t for t in readers["tasks"].drain() if t["incident_id"] == incident["incident_id"]]


def test_illegal_transition_is_recorded_and_refused(system):
    city, worker, inputs, readers = system
    inputs.detection("cam-G7", "start")
    incident_id = first_incident(readers, "cam-G7")["incident_id"]
    task = current_task(readers, incident_id)
    inputs.feedback(incident_id, "resolve", task["officer_id"], task_id=task["task_id"])  # skipped accept/arrive
    refused = readers["case_events"].wait_for(
        lambda items: [e for e in items if e["incident_id"] == incident_id and not e["applied"]], 30, "refusal")
    assert refused[0]["to_state"] == "RESOLVED" and "illegal transition DISPATCHED -> RESOLVED" in refused[0]["reason"]
    other = "G7-O2" if task["officer_id"] == "G7-O1" else "G7-O1"
    inputs.feedback(incident_id, "accept", other)  # not the assigned officer
    wrong = readers["case_events"].wait_for(
        lambda items: [e for e in items if e["incident_id"] == incident_id and e["actor"] == other], 30, "refusal 2")
    assert not wrong[0]["applied"] and "assigned to" in wrong[0]["reason"]
    assert states_of(readers["case_events"].items, incident_id) == ["DETECTED", "DISPATCHED"]


def test_bad_messages_go_to_dead_letter_while_valid_ones_flow(system):
    city, worker, inputs, readers = system
    topics = city.kafka.topics
    inputs.raw(topics.detections, b"{not json")
    inputs.raw(topics.detections, b'{"schema_version": 99, "event_id": "x"}')
    good = inputs.detection("cam-G6", "start")
    bad = msgspec.structs.replace(good, camera_id="cam-nowhere", event_id="e-x").to_json()
    inputs.raw(topics.detections, bad)
    inputs.feedback("G6.0000000000000000", "accept", "G6-O1")  # right district, no such case
    inputs.feedback("ZZ.0000000000000000", "accept", "G6-O1")  # no such district
    letters = readers["dead_letter"].wait_for(lambda items: len(items) >= 5 and items, 60, "five dead letters")
    reasons = [d["reason"] for d in letters]
    assert any(r.startswith("not JSON") for r in reasons)
    assert any("schema_version: unsupported 99" in r for r in reasons)
    assert any("unknown camera id 'cam-nowhere'" in r for r in reasons)
    assert sum("feedback for unknown case" in r for r in reasons) == 2
    assert all(d["topic"] in (topics.detections, topics.feedback) and d["offset"] >= 0 for d in letters)
    assert first_incident(readers, "cam-G6")["state"] == "DISPATCHED"  # the valid one still flowed
    assert worker.process.poll() is None


def test_replaying_case_events_rebuilds_every_case(system):
    city, worker, inputs, readers = system
    worker.stop()  # a clean stop flushes everything; timers would otherwise keep reassigning G3's case
    assert worker.process.returncode is not None
    events = [CaseEvent.from_dict(e) for e in readers["case_events"].drain()]
    rebuilt = replay(events)
    stored = {k: CaseFile.from_dict(v["file"]) for k, v in read_changelog(city, "cases").items()}
    assert len(stored) >= 9
    assert rebuilt == stored


def test_report_prints_closure_statistics(system):
    city, worker, inputs, readers = system
    command = [sys.executable, "-m", "nonsite.cli", "--config", str(city.root), "report", "--by", "grid", "--csv"]
    result = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {r["grid"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert rows["G1"]["filed"] == "1" and rows["G1"]["closed"] == "1" and rows["G1"]["closure_rate"] == "1.0"
    assert rows["G2"]["reworked"] == "1" and rows["G2"]["closed"] == "0"
    assert rows["G5"]["filed"] == "2" and rows["G5"]["closed"] == "1" and rows["G5"]["closure_rate"] == "0.5"
    assert rows["GX"]["filed"] == "1"
    table = subprocess.run(command[:-1], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "closure_rate" in table.stdout.splitlines()[0]
