"""The operator review queue (人工审核) in the case engine, over in-memory tables: an alarm of a scenario
under ``review: operator`` waits undispatched in AWAITING_REVIEW; ``confirm`` files and dispatches it as an
automatic case, ``dismiss`` ends it (DISMISSED) without a task; any other step on it, and either action on
any other case, is refused and recorded."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from contract import Feedback, to_iso
from nonsite.config import ConfigError, load_city
from stream.domain.casefile import AWAITING_REVIEW, DETECTED, DISMISSED, DISPATCHED, CaseFile, replay
from test_stream_logic import T0, Harness, detection

PROJECT = Path(__file__).resolve().parents[2]
VENDOR = {"camera": "cam-03", "zone": "z-footpath", "scenario": "mobile_vendor"}  # grid G02: O201, O202


@pytest.fixture(scope="module")
def city():
    return load_city(PROJECT / "configs")


def feedback(incident_id: str, action: str, actor: str = "U001", at: float = T0 + 60, **fields) -> Feedback:
    return Feedback(feedback_id=f"{action}-{at}", incident_id=incident_id, action=action, actor=actor, at=to_iso(at),
                    **fields)


def alarm(h: Harness, violation: str = "v", at: float = T0) -> str:
    out = h.feed("detections", detection(violation=violation, at=at, **VENDOR))
    [incident_id] = out.incidents
    return incident_id


def state_of(h: Harness, incident_id: str) -> str:
    return h.engine.tables.cases[incident_id]["file"]["state"]


def test_review_defaults_by_scenario_and_a_bad_value_is_one_line(city, tmp_path: Path):
    assert {s.id: s.review_mode for s in city.scenarios} == {
        "sidewalk_parking": "auto", "stray_dog": "auto", "material_piling": "operator", "street_drying": "operator",
        "illegal_ads": "operator", "road_occupation": "operator", "mobile_vendor": "operator"}
    folder = tmp_path / "configs"
    folder.mkdir()
    for name in ("nonsite.yaml", "cameras.yaml", "grids.yaml"):
        (folder / name).write_text((PROJECT / "configs" / name).read_text(encoding="utf-8"), encoding="utf-8")
    scenarios = yaml.safe_load((PROJECT / "configs" / "scenarios.yaml").read_text(encoding="utf-8"))
    for scenario in scenarios["scenarios"]:
        scenario.pop("review", None)  # absent: the defaults above
    (folder / "scenarios.yaml").write_text(yaml.safe_dump(scenarios, allow_unicode=True), encoding="utf-8")
    assert {s.id: s.review_mode for s in load_city(folder).scenarios} == {s.id: s.review_mode for s in city.scenarios}
    scenarios["scenarios"][0]["review"] = "maybe"
    (folder / "scenarios.yaml").write_text(yaml.safe_dump(scenarios, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_city(folder)
    line = str(refused.value)
    assert "\n" not in line and "scenarios[0].review" in line and "'auto'" in line and "'operator'" in line, line


def test_an_alarm_awaits_review_undispatched_and_repeats_join_it(city):
    h = Harness(city)
    out = h.feed("detections", detection(**VENDOR))
    [incident] = out.incidents.values()
    assert incident.state == AWAITING_REVIEW and incident.deadline is None and incident.officer_id is None
    assert not out.tasks and [a.kind for a in out.alerts] == ["awaiting_review"]
    assert [(e.action, e.to_state) for e in out.case_events] == [("detect", AWAITING_REVIEW)]
    assert not list(h.engine.tables.offence_history.items())  # not an offence until filed
    again = h.feed("detections", detection(kind="update", at=T0 + 30, **VENDOR))
    other = h.feed("detections", detection(violation="w", at=T0 + 40, **VENDOR))  # another track at the spot
    assert list(again.incidents) == list(other.incidents) == [incident.incident_id]
    assert other.incidents[incident.incident_id].detections == 3
    late = h.tick("G02", T0 + 3 * 86400)  # far past the scenario's SLA: no clock runs before filing
    assert not late.case_events and not late.tasks and state_of(h, incident.incident_id) == AWAITING_REVIEW


@pytest.mark.parametrize("action, fields", [("accept", {"actor": "O201"}), ("arrive", {"actor": "O201"}),
                                            ("resolve", {"actor": "O201"}), ("reject", {"reason": "not a vendor"}),
                                            ("reassign", {"target_officer": "O202"})])
def test_no_disposal_step_applies_to_an_alarm_awaiting_review(city, action: str, fields: dict):
    h = Harness(city)
    incident_id = alarm(h)
    out = h.feed("feedback", feedback(incident_id, action, **fields))
    [event] = out.case_events
    assert not event.applied and event.action == action and event.from_state == AWAITING_REVIEW
    assert not out.tasks and [a.kind for a in out.alerts] == ["refused"]
    assert state_of(h, incident_id) == AWAITING_REVIEW


def test_confirm_files_and_dispatches_it_as_an_automatic_case(city):
    h = Harness(city)
    incident_id = alarm(h)
    confirmed_at = T0 + 600
    out = h.feed("feedback", feedback(incident_id, "confirm", at=confirmed_at, reason="a pushcart with fruit"))
    assert [(e.action, e.actor, e.from_state, e.to_state, e.applied) for e in out.case_events] == [
        ("confirm", "U001", AWAITING_REVIEW, DETECTED, True), ("dispatch", "system", DETECTED, DISPATCHED, True)]
    [task] = out.tasks
    incident = out.incidents[incident_id]
    assert task.officer_id in ("O201", "O202") and incident.state == DISPATCHED
    assert incident.officer_id == task.officer_id
    sla = city.scenario("mobile_vendor").sla_minutes * 60
    assert incident.deadline == task.deadline == to_iso(confirmed_at + sla)  # the SLA runs from the filing
    assert incident.first_offence and "new_incident" in [a.kind for a in out.alerts]
    assert [key for key, _ in h.engine.tables.offence_history.items()] == ["site:cam-03/z-footpath"]
    again = h.feed("feedback", feedback(incident_id, "confirm", at=confirmed_at + 1))
    [refused] = again.case_events
    assert not refused.applied and refused.reason == "case is DISPATCHED, not awaiting review" and not again.tasks
    accepted = h.feed("feedback", feedback(incident_id, "accept", actor=task.officer_id, at=confirmed_at + 2,
                                           task_id=task.task_id))
    assert [e.to_state for e in accepted.case_events if e.applied] == ["ACCEPTED"]
    assert replay(h.events) == {k: CaseFile.from_dict(v["file"]) for k, v in h.engine.tables.cases.items()}


def test_dismiss_needs_a_reason_ends_the_alarm_and_keeps_its_violations(city):
    h = Harness(city)
    incident_id = alarm(h)
    bare = h.feed("feedback", feedback(incident_id, "dismiss"))
    assert [(e.applied, e.reason) for e in bare.case_events] == [(False, "a dismissal needs a reason")]
    out = h.feed("feedback", feedback(incident_id, "dismiss", at=T0 + 90, reason="parked bicycles, no vendor"))
    [event] = out.case_events
    assert (event.action, event.actor, event.to_state, event.applied, event.reason) == (
        "dismiss", "U001", DISMISSED, True, "parked bicycles, no vendor")
    assert not out.tasks and out.incidents[incident_id].state == DISMISSED
    assert incident_id not in (h.engine.tables.open_cases.get("G02") or [])
    # the same violation, and another track at the spot within the dedup window, open no case
    repeat = h.feed("detections", detection(kind="update", at=T0 + 120, **VENDOR))
    nearby = h.feed("detections", detection(violation="w", at=T0 + 150, **VENDOR))
    assert list(repeat.incidents) == list(nearby.incidents) == [incident_id]
    assert not repeat.tasks and not nearby.tasks and state_of(h, incident_id) == DISMISSED
    for action in ("confirm", "dismiss"):
        late = h.feed("feedback", feedback(incident_id, action, at=T0 + 200, reason="again"))
        assert [(e.applied, e.reason) for e in late.case_events] == [(False, "case is DISMISSED, not awaiting review")]
    assert not list(h.engine.tables.offence_history.items())
    later = h.feed("detections", detection(violation="x", at=T0 + city.stream.dedup_window_s + 400, **VENDOR))
    [fresh] = later.incidents.values()
    assert fresh.incident_id != incident_id and fresh.state == AWAITING_REVIEW and fresh.recurrence_of is None
    filed = h.feed("feedback", feedback(fresh.incident_id, "confirm", at=T0 + city.stream.dedup_window_s + 500))
    assert filed.incidents[fresh.incident_id].first_offence  # a dismissed alarm is nobody's prior offence


def test_review_actions_on_an_automatic_case_are_refused(city):
    h = Harness(city)
    out = h.feed("detections", detection())  # a stray dog: auto
    [incident] = out.incidents.values()
    assert incident.state == DISPATCHED
    for action in ("confirm", "dismiss"):
        refused = h.feed("feedback", feedback(incident.incident_id, action, reason="x"))
        assert [(e.applied, e.reason) for e in refused.case_events] == [(False,
                                                                          "case is DISPATCHED, not awaiting review")]
    assert state_of(h, incident.incident_id) == DISPATCHED
