"""SIGKILL a worker mid-stream, start it again: the outcome equals that of an uninterrupted run.

Two isolated systems (own topics, own app id) get the same inputs.  Run A is never interrupted;
run B's worker is killed with SIGKILL ten times while it works through the detections, and started
again each time.
Compared: every table (read back from its changelog), the latest incident snapshots, the tasks and
the case events (deduplicated by event id, which is how consumers read an at-least-once log; a
re-sent event must be identical to the first copy).
"""
from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from nonsite.config import City
from stream.domain.dedup import CityMap
from stream.domain.engine import Tables, incident_id_for
from contract import Detection, Evidence, Feedback, to_iso
from stream_support import Inputs, Reader, WorkerProcess, make_city, read_changelog

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
GRIDS = ["G1", "G2", "G3", "G4"]
SCENARIOS = ["sidewalk_parking", "road_occupation", "mobile_vendor", "material_piling", "stray_dog"]
ZONES = ["z1", "z-no_vending", "z-storefront", "z-no_piling", "z-road", "z-plaza"]
UPDATES = 4


def planned_detections(base: float) -> list[Detection]:
    """Per camera: a start for every scenario × zone, then rounds of updates (one partition per camera), the
    first observed at ``base`` (the test's start: the scenarios' time limits must not pass while it runs)."""
    plan = []
    for round_ in range(UPDATES + 1):
        for g, grid in enumerate(GRIDS):
            camera = f"cam-{grid}"
            for s, scenario in enumerate(SCENARIOS):
                for z, zone in enumerate(ZONES):
                    violation = f"{camera}/{s}-{z}/{scenario}"
                    at = base + round_ * 10 + g * 0.1 + s * 0.01 + z * 0.001
                    plan.append(Detection(
                        event_id=f"{violation}#{round_}", kind="start" if round_ == 0 else "update",
                        violation_id=violation, camera_id=camera, scenario=scenario, zone_id=zone,
                        object_class="car", track_id=s * 10 + z, confidence=0.5 + 0.01 * round_,
                        bbox=[0.1, 0.5, 0.3, 0.9], first_seen=to_iso(base), observed_at=to_iso(at), dwell_s=130.0,
                        plate=f"川A{g}{s}{z}12" if s == 0 else None,
                        evidence=[Evidence(kind="annotated", sha256=f"{g}{s}{z}{round_}".rjust(64, "0"), uri="e")]))
    return plan


def planned_feedback(city: City, city_map: CityMap, base: float) -> list[Feedback]:
    """An operator confirms every alarm awaiting review, then accepts and reports arrival on every third case
    (ids follow from the detections)."""
    starts = [d for d in planned_detections(base) if d.kind == "start"]
    feedback = [Feedback(feedback_id=f"c{index}", action="confirm", actor="U-ops", at=to_iso(base + 90 + index * 0.01),
                         incident_id=incident_id_for(city_map.district_of_camera[d.camera_id], d.event_id))
                for index, d in enumerate(starts) if city.scenario(d.scenario).review_mode == "operator"]
    for index, d in enumerate(starts[::3]):
        incident_id = incident_id_for(city_map.district_of_camera[d.camera_id], d.event_id)
        for step, action in enumerate(("accept", "arrive")):
            feedback.append(Feedback(feedback_id=f"f{index}-{action}", incident_id=incident_id, action=action,
                                     actor="U-ops", at=to_iso(base + 100 + index + step * 0.5)))
    return feedback


def produce(inputs: Inputs, records) -> None:
    """Detections keyed by camera (one partition per camera); feedback all on one partition, so that both runs
    apply it in the same order: confirmations dispatch round robin, and their order picks the officer."""
    topics = inputs.city.kafka.topics
    for record in records:
        if isinstance(record, Detection):
            inputs.producer.send(topics.detections, key=record.camera_id.encode(), value=record.to_json())
        else:
            inputs.producer.send(topics.feedback, key=record.incident_id.encode(), value=record.to_json(), partition=0)
    inputs.producer.flush(timeout=60)


def wait_count(reader: Reader, predicate, expected: int, timeout: float, what: str) -> None:
    reader.wait_for(lambda items: len({json.dumps(i, sort_keys=True) for i in items if predicate(i)}) >= expected,
                    timeout, what)


def outcome(city: City, readers: dict[str, Reader]) -> dict:
    """Everything the run left behind, with topic names (which differ per run) taken out."""
    prefix = city.kafka.topics.detections.split(".")[0] + "."
    strip = lambda text: text.replace(prefix, "")  # noqa: E731
    events: dict[str, dict] = {}
    resent = 0
    for event in readers["case_events"].drain():
        event = {**event, "source": strip(event["source"])}
        resent += event["event_id"] in events
        assert events.setdefault(event["event_id"], event) == event, f"re-sent event differs: {event}"
    incidents = {i["incident_id"]: i for i in readers["incidents"].drain()}
    tasks: dict[str, set] = {}
    for task in readers["tasks"].drain():
        tasks.setdefault(task["task_id"], set()).add((task["officer_id"], task["assigned_at"]))
    assert all(len(v) == 1 for v in tasks.values()), "a task was dispatched twice"
    tables = {name: read_changelog(city, name) for name in Tables.names() if name != "source_offsets"}
    return {"events": events, "incidents": incidents, "tasks": tasks, "tables": tables, "resent_events": resent}


def readers_for(city: City) -> dict[str, Reader]:
    topics = city.kafka.topics
    return {name: Reader(city.kafka.bootstrap, getattr(topics, name)) for name in ("case_events", "incidents", "tasks")}


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://localhost:{port}/metrics", timeout=10).read().decode()
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def run(tmp: Path, kills: int, base: float) -> tuple[dict, dict]:
    """Both runs send the detections in ten waves; with ``kills``, the worker is killed (SIGKILL) as soon
    as it has begun to apply a wave, and started again."""
    city = make_city(tmp, GRIDS, acceptance_minutes=60, commit_interval_s=5.0)
    city_map = CityMap.build(city)
    detections, feedback = planned_detections(base), planned_feedback(city, city_map, base)
    incidents = len([d for d in detections if d.kind == "start"])
    inputs, readers = Inputs(city), readers_for(city)
    worker = WorkerProcess(city, tmp).start()
    info = {"restarts": 0, "skipped_after_restart": 0.0}
    try:
        waves = 10
        for wave in range(waves):
            seen = len(readers["incidents"].poll())  # every detection applied publishes a snapshot
            produce(inputs, detections[wave * len(detections) // waves:(wave + 1) * len(detections) // waves])
            if wave < kills:
                readers["incidents"].wait_for(lambda items: len(items) > seen, 120, f"work of wave {wave} to kill")
                worker.kill()
                worker.start()  # same data dir, same web port: the same worker, restarted
                info["restarts"] += 1
        detected = lambda e: e["action"] == "detect"  # noqa: E731
        dispatched = lambda e: e["action"] == "dispatch"  # noqa: E731
        wait_count(readers["case_events"], detected, incidents, 180, "every incident")
        updates = len(detections)
        readers["incidents"].wait_for(
            lambda items: sum(i["detections"] for i in {x["incident_id"]: x for x in items}.values()) >= updates,
            120, "every detection merged")
        produce(inputs, feedback)  # after the detections, so both runs apply them in the same order
        wait_count(readers["case_events"], dispatched, incidents, 60, "every dispatch (alarms once confirmed)")
        arrived = lambda e: e["to_state"] == "ARRIVED"  # noqa: E731
        wait_count(readers["case_events"], arrived, sum(f.action == "arrive" for f in feedback), 120, "every arrival")
        if kills:
            info["skipped_after_restart"] = metric(worker.web_port, "nonsite_stream_duplicate_inputs_total")
            info["redone_after_restart"] = metric(worker.web_port, "nonsite_stream_redone_units_total")
    finally:
        worker.stop()
        inputs.close()
    return collected(city, readers), info


def collected(city: City, readers: dict[str, Reader]) -> dict:
    """The run's :func:`outcome`, the readers closed after."""
    try:
        return outcome(city, readers)
    finally:
        for reader in readers.values():
            reader.close()


def differing_fields(got: dict[str, dict], expected: dict[str, dict]) -> dict[str, dict]:
    """Per id whose record differs: each differing field as (got, expected)."""
    return {key: {field: (value.get(field), expected.get(key, {}).get(field)) for field in value
                  if value.get(field) != expected.get(key, {}).get(field)}
            for key, value in got.items() if value != expected.get(key)}


def test_worker_killed_ten_times_mid_stream_recovers_to_the_same_outcome(kafka_bootstrap: str, tmp_path: Path):
    expected_incidents = len(GRIDS) * len(SCENARIOS) * len(ZONES)
    base = float(int(time.time()))  # both runs see the same timestamps
    clean, _ = run(tmp_path / "clean", kills=0, base=base)
    killed, info = run(tmp_path / "killed", kills=10, base=base)
    assert info["restarts"] == 10
    assert len(clean["incidents"]) == expected_incidents
    assert {e["action"] for e in clean["events"].values()} >= {"detect", "confirm", "dispatch", "accept", "arrive"}
    assert killed["events"].keys() == clean["events"].keys()
    assert not differing_fields(killed["events"], clean["events"])
    assert not differing_fields(killed["incidents"], clean["incidents"])
    assert killed["tasks"] == clean["tasks"]
    for name, table in clean["tables"].items():
        diff = {k: (v, table.get(k)) for k, v in killed["tables"][name].items() if v != table.get(k)}
        assert killed["tables"][name] == table, f"table {name} differs after the restart: {diff}"
    # the restarted worker really met work its predecessor had done: inputs it had applied (skipped
    # now), a cases-topic message it had half applied (redone now), or one whose outputs it had
    # published before its state reached Kafka (applied again: the same events re-sent)
    assert info["skipped_after_restart"] + info["redone_after_restart"] + killed["resent_events"] > 0, info
    assert clean["resent_events"] == 0
