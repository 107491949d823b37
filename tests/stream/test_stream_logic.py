"""Pure logic of the stream processor: state machine, replay, dedup, dispatch, verification,
first offences, statistics, intake validation and the engine over in-memory tables."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import pytest

from nonsite.config import Shift, load_city
from stream.domain import casefile
from stream.domain.casefile import (ACCEPTED, ARRIVED, CLOSED, DETECTED, DISPATCHED, ESCALATED, REJECTED, RESOLVED,
                             CaseFile, replay, transition)
from stream.domain.dedup import CityMap, SiteCase, district_of_incident, match_detection, metres_between
from stream.domain.dispatch import choose_officer, on_duty
from stream.domain.engine import Engine, Tables
from stream.domain.intake import Envelope, admit, pack, unpack
from stream.state.journal import Journal, View
from stream.domain.offences import offender_keys, prior_offences, record_offence
from contract import CameraStatus, ContractError, DeadLetter, Detection, Evidence, Feedback, Incident, to_iso
from stream.domain.verify import REOPEN, SELF_CORRECT, VERIFY, Presence, observe_camera, observe_detection, verdict

PROJECT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc).timestamp()  # 10:00 Beijing time, a Friday


@pytest.fixture(scope="module")
def city():
    return load_city(PROJECT / "configs")


def step(case, to, action="x", **kw):
    return transition(case, to, action, actor="t", at=to_iso(T0), **kw)


# ------------------------------------------------------------------ state machine and audit replay
def test_full_disposal_path_is_legal_and_replays_exactly():
    case, events = CaseFile("G01.a"), []
    for to in (DETECTED, DISPATCHED, ACCEPTED, ARRIVED, RESOLVED, "VERIFIED", CLOSED):
        case, event = step(case, to, officer_id="O1" if to == DISPATCHED else None,
                           task_id="G01.a-t1" if to == DISPATCHED else None)
        events.append(event)
    assert case.state == CLOSED and all(e.applied for e in events) and case.officer_id == "O1"
    assert replay(events + events[:3]) == {"G01.a": case}  # duplicates (at-least-once) are skipped


def test_illegal_transition_is_refused_recorded_and_not_applied():
    case, _ = step(CaseFile("G01.b"), DETECTED)
    after, event = step(case, RESOLVED, "resolve")
    assert not event.applied and after.state == DETECTED and after.seq == 2 and after.refused == 1
    assert event.reason.startswith("illegal transition DETECTED -> RESOLVED (resolve)")
    closed = CaseFile("G01.c", state=CLOSED, seq=5)
    assert "no further transitions" in step(closed, DISPATCHED)[1].reason


def test_escalation_keeps_the_disposal_step_it_interrupted():
    case = CaseFile("G01.d")
    for to in (DETECTED, DISPATCHED, ACCEPTED, ESCALATED):
        case, _ = step(case, to)
    assert case.state == ESCALATED and case.working_state == ACCEPTED and case.escalated
    assert not step(case, ESCALATED)[1].applied  # escalated once
    assert not step(case, RESOLVED)[1].applied  # still has to arrive first
    case, event = step(case, ARRIVED)
    assert event.applied and case.state == ARRIVED and case.escalated


def test_replay_refuses_a_log_with_a_gap():
    case, first = step(CaseFile("G01.e"), DETECTED)
    _, second = step(case, DISPATCHED)
    _, third = step(CaseFile("G01.e", state=DISPATCHED, seq=2), ACCEPTED)
    with pytest.raises(ValueError, match="seq 3 after seq 1"):
        replay([first, third])
    assert replay([first, second])["G01.e"].state == DISPATCHED


def test_refuse_records_a_custom_reason():
    case, _ = step(CaseFile("G01.f"), DETECTED)
    after, event = casefile.refuse(case, ACCEPTED, "accept", "wrong task", actor="O2", at=to_iso(T0))
    assert not event.applied and event.reason == "wrong task" and after.state == DETECTED


# ------------------------------------------------------------------ dedup
def test_districts_join_grids_and_nearby_cameras(city):
    cmap = CityMap.build(city)
    assert cmap.district_of_camera == {"cam-01": "G01", "cam-02": "G01", "cam-03": "G02", "cam-04": "G02"}
    assert metres_between(30.0, 104.0, 30.0001, 104.0) == pytest.approx(11.1, abs=0.2)
    assert district_of_incident("G01+G02.abc") == "G01+G02" and district_of_incident("nodot") == ""


def test_match_same_site_neighbour_window_and_recurrence():
    cmap = CityMap(district_of_camera={"a": "G", "b": "G"}, neighbours={"a/z": ("b/y",), "b/y": ("a/z",)},
                   districts=("G",))
    cases = {}
    at = lambda key: cases.get(key)  # noqa: E731
    assert match_detection("s", "a", "z", 100, 100, cmap, at, 600).incident_id is None
    cases["s|b|y"] = SiteCase("G.1", "s", True, DISPATCHED, 90.0, False)
    assert match_detection("s", "a", "z", 100, 100, cmap, at, 600).incident_id == "G.1"  # other camera, same spot
    assert match_detection("s", "a", "z", 800, 800, cmap, at, 600).incident_id is None  # no time overlap
    assert match_detection("t", "a", "z", 100, 100, cmap, at, 600).incident_id is None  # other scenario
    cases["s|a|z"] = SiteCase("G.2", "s", False, REJECTED, 100.0, False)
    assert match_detection("s", "a", "z", 200, 200, cmap, at, 600).incident_id == "G.1"
    cases.pop("s|b|y")
    assert match_detection("s", "a", "z", 200, 200, cmap, at, 600).incident_id == "G.2"  # false alarm absorbs
    cases["s|a|z"] = SiteCase("G.2", "s", False, CLOSED, 100.0, True)
    match = match_detection("s", "a", "z", 200, 200, cmap, at, 600)
    assert match.incident_id is None and match.recurrence_of == "G.2"


# ------------------------------------------------------------------ dispatch
def test_fewest_open_tasks_then_round_robin():
    officers = ["O1", "O2", "O3"]
    assert choose_officer(officers, {"O1": 1, "O2": 1, "O3": 2}, None) == "O1"
    assert choose_officer(officers, {"O1": 1, "O2": 1, "O3": 2}, "O1") == "O2"
    assert choose_officer(officers, {"O1": 1, "O2": 1, "O3": 2}, "O2") == "O1"
    assert choose_officer(officers, {}, "O3") == "O1" and choose_officer([], {}, None) is None


def test_shifts_in_the_city_timezone(city):
    day = city.officers[3]  # O202: mon-fri 08:00-20:00 Asia/Shanghai
    assert on_duty(day, T0, "Asia/Shanghai")  # Friday 10:00 local
    assert not on_duty(day, T0 + 11 * 3600, "Asia/Shanghai")  # Friday 21:00
    assert not on_duty(day, T0 + 24 * 3600, "Asia/Shanghai")  # Saturday
    night = day.model_copy(update={"shifts": [Shift(days=["fri"], start="22:00", end="06:00")]})
    assert on_duty(night, T0 + 17 * 3600, "Asia/Shanghai")  # Saturday 03:00, Friday's night shift


# ------------------------------------------------------------------ verification
def test_camera_decides_verify_reopen_self_correction():
    p = observe_detection(Presence(), "c/z", "v1", "start", 100.0)
    assert verdict(p, RESOLVED, 150.0, 200.0, 10) is None  # no observation since the resolution
    still = observe_camera(p, "c/z", True, 170.0)
    assert verdict(still, RESOLVED, 150.0, 171.0, 10) == REOPEN
    gone = observe_camera(p, "c/z", False, 155.0)
    assert verdict(gone, RESOLVED, 150.0, 160.0, 10) is None  # grace not over
    assert verdict(gone, RESOLVED, 150.0, 166.0, 10) == VERIFY
    ended = observe_detection(p, "c/z", "v1", "end", 120.0)
    assert verdict(ended, DISPATCHED, None, 131.0, 10) == SELF_CORRECT
    assert verdict(ended, ARRIVED, None, 131.0, 10) is None  # the officer is there: no self-correction
    assert observe_camera(ended, "c/z", True, 110.0) == ended  # out-of-order observation ignored


def test_repeated_absent_observations_do_not_postpone_verification():
    """A camera re-checking every few seconds keeps saying "absent": the grace counts from the first."""
    p = observe_detection(Presence(), "c/z", "v1", "start", 100.0)
    for at in range(150, 200, 3):  # status every 3 s, grace 10 s
        p = observe_camera(p, "c/z", False, float(at))
    assert p.absent_since == 150.0
    assert verdict(p, RESOLVED, 145.0, 198.0, 10) == VERIFY
    assert Presence.from_dict(p.to_dict()) == p
    back = observe_camera(p, "c/z", True, 199.0)
    assert back.present and observe_camera(back, "c/z", False, 205.0).absent_since == 205.0


# ------------------------------------------------------------------ first offence
def test_prior_offences_by_location_plate_and_window():
    keys = offender_keys("cam", "z", plate="P1", shop_id="S1")
    history = {"plate:P1": record_offence(None, "G.1", 0.0, 365)}
    assert prior_offences(history.get, keys, 100.0, 365) == 1
    assert prior_offences(history.get, keys, 366 * 86400.0, 365) == 0  # outside the window
    pruned = record_offence(history["plate:P1"], "G.2", 400 * 86400.0, 365)
    assert pruned == [[400 * 86400.0, "G.2"]]


# ------------------------------------------------------------------ intake
def detection(camera="cam-01", kind="start", at=T0, violation="v", zone="z-road", scenario="stray_dog", **kw):
    return Detection(event_id=f"{camera}-{violation}-{kind}-{at}", kind=kind, violation_id=f"{camera}/{violation}",
                     camera_id=camera, scenario=scenario, zone_id=zone, object_class="dog", track_id=1,
                     confidence=0.9, bbox=[0, 0, 1, 1], first_seen=to_iso(T0), observed_at=to_iso(at), dwell_s=200.0,
                     evidence=[Evidence(kind="annotated", sha256="f" * 64, uri="file:///x")], **kw)


@pytest.mark.parametrize("raw, reason", [
    (b"{nope", "not JSON"),
    (b'{"schema_version": 2}', "schema_version: unsupported 2"),
    (b'[1]', "expected a JSON object"),
    (detection(camera="cam-99").to_json(), "unknown camera id 'cam-99'"),
    (detection(zone="z-nowhere").to_json(), "unknown zone 'z-nowhere'"),
    (detection(kind="middle").to_json(), "Detection.kind: invalid enum value 'middle' (one of start, update, end)"),
    (detection(scenario="jaywalking").to_json(), "unknown scenario 'jaywalking'"),
])
def test_bad_detections_become_dead_letters(city, raw, reason):
    letter = admit("detections", raw, "nonsite.detections", 3, 77, CityMap.build(city))
    assert isinstance(letter, DeadLetter) and reason in letter.reason
    assert (letter.topic, letter.partition, letter.offset) == ("nonsite.detections", 3, 77)


def test_feedback_for_unknown_district_is_a_dead_letter(city):
    f = Feedback(feedback_id="f", incident_id="G99.abc", action="accept", actor="O101", at=to_iso(T0))
    letter = admit("feedback", f.to_json(), "nonsite.feedback", 0, 5, CityMap.build(city))
    assert isinstance(letter, DeadLetter) and "feedback for unknown case 'G99.abc'" in letter.reason


# ------------------------------------------------------------------ engine over in-memory tables
class Harness:
    def __init__(self, city):
        self.city, self.map = city, CityMap.build(city)
        self.store: dict = {}
        self.engine = Engine(city, Tables.over(self.store), self.map)
        self.offsets: dict[str, int] = {}
        self.events: list = []

    def feed(self, role: str, record, partition: int = 0):
        offset = self.offsets[role] = self.offsets.get(role, -1) + 1
        env = admit(role, record.to_json(), role, partition, offset, self.map)
        assert isinstance(env, Envelope), env
        out = self.engine.handle(env)
        self.events += out.case_events
        return out

    def tick(self, district: str, at: float):
        out = self.engine.handle(Envelope("tick", district, "tick", -1, {"now": to_iso(at)}))
        self.events += out.case_events
        return out


def test_engine_dedups_dispatches_and_verifies(city):
    h = Harness(city)
    out = h.feed("detections", detection())
    [incident] = out.incidents.values()
    [task] = out.tasks
    assert incident.state == DISPATCHED and task.officer_id == "O101" and task.first_offence
    assert Incident.from_dict(json.loads(json.dumps(incident))).incident_id == incident.incident_id  # the contract
    assert [a.kind for a in out.alerts] == ["new_incident"]
    again = h.feed("detections", detection(kind="update", at=T0 + 60))
    assert list(again.incidents) == [incident.incident_id] and not again.tasks
    assert again.incidents[incident.incident_id].detections == 2
    second = h.feed("detections", detection(camera="cam-02", zone="z-side-walk", violation="w"))
    [other_task] = second.tasks
    assert other_task.officer_id == "O102"  # fewest open tasks
    for action in ("accept", "arrive", "resolve"):
        h.feed("feedback", Feedback(feedback_id=action, incident_id=incident.incident_id, action=action,
                                    actor="O101", at=to_iso(T0 + 120), task_id=task.task_id))
    status = CameraStatus(event_id="s", camera_id="cam-01", state="online", observed_at=to_iso(T0 + 130), active=[])
    h.feed("camera_status", status)
    closing = h.tick("G01", T0 + 130 + city.stream.verify_grace_s)
    assert [e.to_state for e in closing.case_events if e.incident_id == incident.incident_id] == ["VERIFIED", CLOSED]
    cases = replay(h.events)
    stored = {k: CaseFile.from_dict(v["file"]) for k, v in h.engine.tables.cases.items()}
    assert cases == stored


def close_one_case(h: "Harness") -> str:
    """A stray dog at cam-01, disposed of by O101 and verified by the camera: the closed case's id."""
    out = h.feed("detections", detection())
    [incident] = out.incidents.values()
    [task] = out.tasks
    for action in ("accept", "arrive", "resolve"):
        h.feed("feedback", Feedback(feedback_id=action, incident_id=incident.incident_id, action=action,
                                    actor="O101", at=to_iso(T0 + 120), task_id=task.task_id))
    h.feed("camera_status", CameraStatus(event_id="s", camera_id="cam-01", state="online",
                                         observed_at=to_iso(T0 + 130), active=[]))
    h.tick("G01", T0 + 130 + h.city.stream.verify_grace_s)
    assert h.engine.tables.cases[incident.incident_id]["file"]["state"] == CLOSED
    return incident.incident_id


def test_ended_cases_leave_the_state_after_the_retention_period(city):
    days = city.stream.retention_days
    kept, pruned = Harness(city), Harness(city)
    for h in (kept, pruned):
        closed_id = close_one_case(h)
    kept.tick("G01", T0 + (days - 1) * 86400)
    pruned.tick("G01", T0 + (days + 1) * 86400)
    assert closed_id in kept.engine.tables.cases and closed_id not in pruned.engine.tables.cases
    tables = pruned.engine.tables
    assert closed_id not in [v for _, v in tables.site_cases.items()]
    assert closed_id not in [v for _, v in tables.violation_cases.items()]
    assert not list(tables.retired_cases.items()) and tables.retired_hours.get("G01") == []
    later = T0 + (days + 2) * 86400
    again_kept = kept.feed("detections", detection(violation="v2", at=later))
    again_pruned = pruned.feed("detections", detection(violation="v2", at=later))
    assert [i.recurrence_of for i in again_kept.incidents.values()] == [closed_id]  # 回潮 within retention
    assert [i.recurrence_of for i in again_pruned.incidents.values()] == [None]


def test_engine_skips_inputs_already_applied_and_redoes_a_half_applied_one(city):
    h = Harness(city)
    d = detection()
    env = admit("detections", d.to_json(), "det", 0, 0, h.map)
    first = h.engine.handle(env)
    assert h.engine.handle(env).skipped  # its marker landed: already applied
    # a crash after only some of the next input's writes reached the changelog:
    update = admit("detections", detection(kind="update", at=T0 + 5).to_json(), "det", 0, 1, h.map)
    before = json.loads(json.dumps(h.store))
    h.engine.handle(update)
    after = json.loads(json.dumps(h.store))
    changed = [k for k in after if after[k] != before.get(k)]
    assert changed[-1].startswith("source_offsets|")  # the marker is written last
    half = dict(before)
    half.update({k: after[k] for k in changed[:1]})  # only the first write landed
    redo = Engine(city, Tables.over(half), h.map).handle(update)
    assert not redo.skipped and half == after
    # ...and when the next input's first write landed but not its marker, this one stays applied
    later = admit("detections", detection(kind="update", at=T0 + 9).to_json(), "det", 0, 2, h.map)
    h.engine.handle(later)
    final = json.loads(json.dumps(h.store))
    partial = dict(after)
    first_write = next(k for k in final if final[k] != after.get(k))
    partial[first_write] = final[first_write]
    assert Engine(city, Tables.over(partial), h.map).handle(update).skipped
    incident_id = next(iter(first.incidents))
    assert redo.incidents[incident_id].detections == 2


def test_no_officer_queues_then_dispatches_when_a_shift_starts(city):
    h = Harness(city)
    saturday_night = T0 + 24 * 3600 + 14 * 3600  # Sunday 00:00 local... O202 is off, O201 around the clock
    fresh = load_city(PROJECT / "configs")  # model_copy keeps a city's cached lookups: copy one that has none
    off_city = fresh.model_copy(update={"officers": [o for o in city.officers if o.id != "O201"],
                                        "scenarios": [s.model_copy(update={"review": "auto"}) for s in city.scenarios]})
    h = Harness(off_city)
    out = h.feed("detections", detection(camera="cam-04", zone="z-street", scenario="mobile_vendor", at=saturday_night))
    [incident] = out.incidents.values()
    assert incident.state == DETECTED and not out.tasks and [a.kind for a in out.alerts] == ["new_incident",
                                                                                             "no_officer"]
    monday_9 = T0 + 3 * 24 * 3600 - 3600 + 3600  # Monday 10:00 local
    out = h.tick("G02", monday_9)
    assert [t.officer_id for t in out.tasks] == ["O202"]


def test_journal_view_pop_and_items():
    journal = Journal({})
    view = View(journal, "x")
    journal.begin("1")
    view["a"] = 1
    view["b"] = 2
    assert view.pop("b") == 2 and "b" not in view
    journal.commit()
    assert dict(view.items()) == {"a": 1}


@pytest.mark.parametrize("field, value, reason", [
    ("track_id", "7", "Detection.track_id: expected int, got str"),
    ("track_id", True, "Detection.track_id: expected int, got bool"),
    ("confidence", False, "Detection.confidence: expected float, got bool"),
    ("bbox", [0, "a", 1, 1], "Detection.bbox[1]: expected float, got str"),
    ("evidence", [{"kind": "annotated"}], "Detection.evidence[0].sha256: missing field"),
    ("evidence", {}, "Detection.evidence: expected array, got object"),
    ("plate", 12, "Detection.plate: expected str | null, got int"),
    ("camera_id", None, "Detection.camera_id: expected str, got null"),
    ("first_seen", "2026-11-21T01:00:00", "Detection.first_seen: not a UTC ISO-8601 timestamp: '2026-11-21T01:00:00'"),
    ("schema_version", 2, "schema_version: unsupported 2 (this build reads 1)"),
    ("kind", ["start"], "Detection.kind: expected str, got array"),
])
def test_intake_dead_letters_name_the_field(city, field, value, reason):
    """Intake refuses with the contract's own message, naming the field (one validator for both)."""
    data = {**json.loads(detection().to_json()), field: value}
    with pytest.raises(ContractError) as refused:
        Detection.from_json(json.dumps(data))
    letter = admit("detections", json.dumps(data).encode(), "nonsite.detections", 0, 1, CityMap.build(city))
    assert isinstance(letter, DeadLetter) and letter.reason == str(refused.value) == reason


def same_inputs(read: list[Envelope], admitted: list[Envelope]) -> bool:
    """The engine reads admitted payloads back as their unconstrained subclass: the same fields and values."""
    return ([msgspec.to_builtins(e) for e in read] == [msgspec.to_builtins(e) for e in admitted]
            and all(isinstance(r.payload, type(a.payload)) for r, a in zip(read, admitted)))


def test_intake_accepts_what_the_contract_accepts(city):
    data = {**json.loads(detection().to_json()), "confidence": 1, "plate": None, "bbox": [0, 0.5, 1, 1.0]}
    env = admit("detections", json.dumps(data).encode(), "nonsite.detections", 0, 1, CityMap.build(city))
    assert isinstance(env, Envelope) and env.payload.confidence == 1 and env.payload.plate is None
    assert Detection.from_json(json.dumps(data)).confidence == 1
    assert same_inputs([Envelope.from_bytes(env.to_bytes())], [env])  # as the engine reads it from the cases topic


def scripted_inputs(city):
    """Detections at two cameras (starts, repeats, an end), officer feedback, a camera re-check and ticks."""
    cmap = CityMap.build(city)
    script = []
    for step in range(6):
        script.append(("detections", detection(kind="start" if step == 0 else "update", at=T0 + step * 5)))
        script.append(("detections", detection(camera="cam-02", zone="z-side-walk", violation="w",
                                               kind="start" if step == 0 else "update", at=T0 + step * 5 + 1)))
    script.append(("detections", detection(camera="cam-02", zone="z-side-walk", violation="w", kind="end",
                                           at=T0 + 40)))
    first = Engine(city, Tables.in_memory(), cmap)
    env = admit("detections", detection().to_json(), "detections", 0, 0, cmap)
    incident_id = next(iter(first.handle(env).incidents))
    for action in ("accept", "arrive", "resolve"):
        script.append(("feedback", Feedback(feedback_id=action, incident_id=incident_id, action=action, actor="O101",
                                            at=to_iso(T0 + 60), task_id=f"{incident_id}-t1")))
    script.append(("camera_status", CameraStatus(event_id="s", camera_id="cam-01", state="online",
                                                 observed_at=to_iso(T0 + 70), active=[])))
    script.append(("tick", T0 + 70 + city.stream.verify_grace_s))
    script.append(("detections", detection(kind="start", violation="again", at=T0 + 200)))
    return script


def envelopes(city, script):
    cmap, offsets, out = CityMap.build(city), {}, []
    for role, record in script:
        if role == "tick":
            out.append(Envelope("tick", "G01", "tick", -1, {"now": to_iso(record)}))
            continue
        offset = offsets[role] = offsets.get(role, -1) + 1
        out.append(admit(role, record.to_json(), role, 0, offset, cmap))
    return out


@pytest.mark.parametrize("batch", [1, 3, 7, 100])
def test_batches_give_the_outcome_of_one_input_at_a_time(city, batch):
    """A cases-topic message of many inputs ends in the state, events, tasks and alerts of one-by-one."""
    envs = envelopes(city, scripted_inputs(city))
    single_store, batch_store = {}, {}
    single, batched = Engine(city, Tables.over(single_store)), Engine(city, Tables.over(batch_store))
    one = [single.handle(env) for env in envs]
    many = [batched.handle_batch(envs[i:i + batch], at=(0, i)) for i in range(0, len(envs), batch)]
    for name in ("case_events", "tasks", "alerts", "dead_letters"):
        assert [x for o in many for x in getattr(o, name)] == [x for o in one for x in getattr(o, name)], name
    latest = lambda outs: {s["incident_id"]: s for o in outs for s in o.snapshots()}  # noqa: E731
    assert latest(many) == latest(one)
    def states(outs):  # per incident, the states its snapshots show, in order, repeats folded
        seen: dict = {}
        for snapshot in (s for o in outs for s in o.snapshots()):
            shown = seen.setdefault(snapshot["incident_id"], [])
            if not shown or shown[-1] != snapshot["state"]:
                shown.append(snapshot["state"])
        return seen
    assert states(many) == states(one)  # every state an input left a case in is published
    values = lambda store: {k: v[0] for k, v in store.items() if not k.startswith("source_offsets|@cases")}  # noqa
    assert values(batch_store) == values(single_store)
    assert {e.to_state for o in one for e in o.case_events} >= {"CLOSED", "SELF_CORRECTED", "DISPATCHED"}


class WriteLog(dict):
    """A store that remembers the order of its writes (the order they reach the changelog)."""

    def __init__(self):
        super().__init__()
        self.order: list = []

    def __setitem__(self, key, value):
        self.order.append(key)
        super().__setitem__(key, value)


def test_a_batch_redone_after_a_crash_recomputes_the_same_writes(city):
    envs = envelopes(city, scripted_inputs(city))
    store = WriteLog()
    engine = Engine(city, Tables.over(store))
    engine.handle_batch(envs[:10], at=(0, 0))
    before = json.loads(json.dumps(store))
    store.order.clear()
    first = engine.handle_batch(envs[10:], at=(0, 1))
    after = json.loads(json.dumps(store))
    changed = list(store.order)
    assert len(set(changed)) == len(changed)  # each key once per message
    assert changed[-1] == "source_offsets|@cases|0"  # the message's position is written last
    for landed in (1, len(changed) // 2, len(changed) - 1):  # a crash after some of the writes
        half = dict(before)
        half.update({k: after[k] for k in changed[:landed]})
        redo = Engine(city, Tables.over(half)).handle_batch(envs[10:], at=(0, 1))
        assert half == after
        assert redo.case_events == first.case_events and redo.tasks == first.tasks
        assert redo.snapshots() == first.snapshots()


def test_packed_raw_inputs_reach_the_engine_as_admitted(city):
    """Intake passes valid input bytes through as payloads; the engine reads them as intake admitted them."""
    cmap = CityMap.build(city)
    data = {**json.loads(detection().to_json()), "extra": "ignored"}
    raws = [json.dumps(data).encode(), json.dumps({**data, "event_id": "e2", "plate": None}).encode()]
    envelopes = [admit("detections", raw, "nonsite.detections", 0, offset, cmap) for offset, raw in enumerate(raws)]
    [message] = pack(envelopes, raws=[raws[0], None])  # None: encoded from the admitted fields
    assert same_inputs(unpack(message), envelopes)
    assert not hasattr(envelopes[0].payload, "extra")


def test_nan_is_not_json_for_the_contract_either(city):
    """json.loads reads NaN, msgspec and RFC 8259 do not: the contract refuses it, so intake dead-letters it."""
    raw = detection().to_json().replace(b'"dwell_s":', b'"dwell_s":NaN,"was":')
    letter = admit("detections", raw, "nonsite.detections", 0, 9, CityMap.build(city))
    assert isinstance(letter, DeadLetter)
    assert letter.reason.startswith("not JSON: JSON is malformed: invalid character")


# ------------------------------------------------------------------ hardening: re-sends, dropped ends, poison
def test_a_detection_sent_again_changes_no_count(city):
    h = Harness(city)
    start = detection()
    [incident] = h.feed("detections", start).incidents.values()
    update = detection(kind="update", at=T0 + 60)
    assert h.feed("detections", update).incidents[incident.incident_id].detections == 2
    for again in (start, update, update):  # the same event ids, at new offsets
        out = h.feed("detections", again)
        assert out.resent == 1 and not out.incidents and not out.case_events
    assert h.engine.tables.cases[incident.incident_id]["incident"]["detections"] == 2
    later = h.feed("detections", detection(kind="update", at=T0 + 61))
    assert later.incidents[incident.incident_id].detections == 3  # a new one still counts


def test_an_end_no_open_case_takes_is_counted(city):
    h = Harness(city)
    closed_id = close_one_case(h)
    out = h.feed("detections", detection(kind="end", at=T0 + 400))
    assert out.dropped_ends == {"case_closed": 1}
    assert h.engine.tables.cases[closed_id]["file"]["state"] == CLOSED
    out = h.feed("detections", detection(kind="end", violation="never-started", at=T0 + 401))
    assert out.dropped_ends == {"no_case": 1}


def test_an_input_the_engine_cannot_apply_is_dead_lettered_and_the_rest_applies(city):
    cmap = CityMap.build(city)
    good = [admit("detections", detection(violation=f"v{i}", zone="z-road").to_json(), "nonsite.detections", 0, i,
                  cmap) for i in range(3)]
    # a payload the engine trips over (as a contract/engine mismatch would make one): not a Detection
    poison = Envelope("detections", good[0].district, "nonsite.detections:0", 7, {"camera_id": "cam-01"})
    engine = Engine(city, Tables.in_memory(), cmap)
    out = engine.handle_batch_isolated([good[0], poison, good[1], good[2]], at=(0, 0), cases_topic="cases")
    [letter] = out.dead_letters
    assert (letter.topic, letter.partition, letter.offset) == ("nonsite.detections", 0, 7)
    assert letter.reason.startswith("case engine: AttributeError")
    [incident] = out.incidents.values()
    assert incident.detections == 3  # every valid input of the message applied, once
    assert engine.position(0) == 0  # the message is applied: the worker skips it if delivered again
    again = engine.handle_batch_isolated([good[0]], at=(0, 1), cases_topic="cases")
    assert again.skipped == 1 and not again.incidents  # intake forwarding it again changes nothing


# ------------------------------------------------------------------ plates: per vehicle, across spots
def parked(camera: str, at: float, plate=None, violation="v", kind="start"):
    """A car on camera's whole frame (cam-01 and cam-02 are in one district but not neighbours)."""
    d = detection(camera=camera, zone="", violation=violation, at=at, kind=kind, scenario="sidewalk_parking",
                  plate=plate)
    return msgspec.structs.replace(d, first_seen=to_iso(at))


def test_a_vehicle_parked_again_at_another_camera_is_not_a_first_offence(city):
    h = Harness(city)
    [first] = h.feed("detections", parked("cam-01", T0, plate="川A12345")).incidents.values()
    assert first.first_offence and first.plate == "川A12345"
    later = T0 + 3 * 86400  # days later, another camera: the dedup window is long past
    [second] = h.feed("detections", parked("cam-02", later, plate="川A12345", violation="w")).incidents.values()
    assert second.incident_id != first.incident_id
    assert not second.first_offence and second.prior_offences == 1


def test_another_camera_seeing_the_same_plate_joins_its_open_case(city):
    h = Harness(city)
    [first] = h.feed("detections", parked("cam-01", T0, plate="川A12345")).incidents.values()
    out = h.feed("detections", parked("cam-02", T0 + 30, plate="川A12345", violation="w"))
    assert list(out.incidents) == [first.incident_id] and out.incidents[first.incident_id].detections == 2


def test_a_plate_read_after_the_start_joins_the_case_and_its_history(city):
    h = Harness(city)
    h.feed("detections", parked("cam-02", T0, plate="川A12345", violation="w"))
    later = T0 + 3 * 86400
    [case] = h.feed("detections", parked("cam-01", later)).incidents.values()
    assert case.first_offence and case.plate is None  # the plate is not known yet
    plate_picture = Evidence(kind="plate", sha256="e" * 64, uri="file:///plate")
    update = parked("cam-01", later + 10, plate="川A12345", kind="update")
    update = msgspec.structs.replace(update, evidence=[plate_picture], confidence=0.5)  # less sure: the scene stays
    [case] = h.feed("detections", update).incidents.values()
    assert case.plate == "川A12345" and not case.first_offence and case.prior_offences == 1
    assert [e["kind"] for e in case.evidence] == ["annotated", "plate"]
