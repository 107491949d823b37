"""The worker's shortcuts on its hot path change no outcome: a whole cases message read in one pass, an
engine taking back the cases it wrote instead of decoding them, marks changed in place within a unit."""
from __future__ import annotations

import json

import msgspec
import pytest
from test_stream_logic import T0, Harness, detection, envelopes, scripted_inputs

from contract import wire
from stream.domain.engine import Engine, InputFailed, Tables
from stream.domain.intake import Envelope, _from_wire, _Wire, _wire_batch, pack, unpack
from stream.runtime.changelog import ChangelogStore


def test_a_cases_message_read_in_one_pass_holds_what_reading_each_input_gives(city):
    envs = [env for env in envelopes(city, scripted_inputs(city)) if isinstance(env, Envelope)]
    raws = [env.payload.to_json() if env.kind != "tick" else None for env in envs]
    for message in pack(envs, raws=raws) + pack(envs):
        one_by_one = [_from_wire(item) for item in _wire_batch(message).batch]
        assert unpack(message) == one_by_one
        assert [type(env.payload) for env in unpack(message)] == [type(env.payload) for env in one_by_one]


def test_an_input_of_no_known_kind_is_read_as_before(city):
    envs = [Envelope("tick", "G01", "tick", -1, {"now": "2026-11-21T01:00:00.000Z"}),
            Envelope("survey", "G01", "survey:0", 3, {"x": [1, 2]})]
    [message] = pack(envs)
    assert unpack(message) == envs


def test_packed_bytes_are_the_envelopes_as_msgspec_writes_them(city):
    envs = [env for env in envelopes(city, scripted_inputs(city)) if isinstance(env, Envelope)]
    raws = [env.payload.to_json() if env.kind != "tick" else None for env in envs]
    parts = [wire.encode(env) if raw is None else
             wire.encode(_Wire(env.kind, env.district, env.stream, env.offset, msgspec.Raw(raw)))
             for env, raw in zip(envs, raws)]
    assert pack(envs, raws=raws) == [b'{"batch":[' + b",".join(parts) + b"]}"]
    limit = max(map(len, parts)) * 3
    messages = pack(envs, max_bytes=limit, raws=raws)
    assert len(messages) > 1 and all(len(message) <= limit + len(b'{"batch":[]}') for message in messages)
    assert [env for message in messages for env in unpack(message)] == [
        env for message in pack(envs, raws=raws) for env in unpack(message)]


@pytest.mark.parametrize("batch", [1, 4])
def test_an_engine_taking_back_its_own_cases_ends_as_one_decoding_them(city, batch):
    envs = envelopes(city, scripted_inputs(city))
    kept_store, fresh_store = {}, {}
    kept = Engine(city, Tables.over(kept_store))
    outs_kept, outs_fresh = [], []
    for number, start in enumerate(range(0, len(envs), batch)):
        unit = envs[start:start + batch]
        outs_kept.append(kept.handle_batch(unit, at=(0, number)))
        outs_fresh.append(Engine(city, Tables.over(fresh_store)).handle_batch(unit, at=(0, number)))
    for name in ("case_events", "tasks", "alerts", "dead_letters"):
        assert [getattr(o, name) for o in outs_kept] == [getattr(o, name) for o in outs_fresh], name
    assert [o.snapshots() for o in outs_kept] == [o.snapshots() for o in outs_fresh]
    assert json.dumps(kept_store, sort_keys=True) == json.dumps(fresh_store, sort_keys=True)


def test_a_unit_that_fails_leaves_the_stored_cases_as_they_were(city):
    envs = [env for env in envelopes(city, scripted_inputs(city)) if isinstance(env, Envelope)]
    detections = [env for env in envs if env.kind == "detections"]
    store: dict = {}
    engine = Engine(city, Tables.over(store))
    engine.handle_batch(detections[:4], at=(0, 0))
    before = json.dumps(store, sort_keys=True)
    broken = Envelope("detections", detections[0].district, detections[0].stream, 10_000, None)  # no payload
    with pytest.raises(InputFailed):
        engine.handle_batch(detections[4:8] + [broken], at=(0, 1))  # marks its cases, then fails
    assert json.dumps(store, sort_keys=True) == before
    redo = engine.handle_batch(detections[4:8], at=(0, 1))
    fresh_store = json.loads(before)
    fresh = Engine(city, Tables.over(fresh_store)).handle_batch(detections[4:8], at=(0, 1))
    assert redo.snapshots() == fresh.snapshots()
    assert json.dumps(store, sort_keys=True) == json.dumps(fresh_store, sort_keys=True)


@pytest.mark.parametrize("first_text, later_text", [
    ("2026-11-20T02:00:00.000Z", "2026-11-20T02:00:00.000001Z"),  # canonical, then a microsecond later
    ("2026-11-20T10:00:00.000250+08:00", "2026-11-20T02:00:00.001Z"),  # an offset and microseconds, then canonical
    ("2026-11-20T02:00:00.000Z", "2026-11-20T10:00:00.000001+08:00"),
])
def test_marks_order_detections_by_their_moment_whatever_the_form_of_its_time(city, first_text, later_text):
    """A mark keeps a canonical time as text and any other as sent: a detection sent again, or an older
    one, changes no count; a newer one, or another event at the same moment, does."""
    h = Harness(city)
    first = msgspec.structs.replace(detection(), observed_at=first_text, event_id="e1")
    [incident] = h.feed("detections", first).incidents.values()
    later = msgspec.structs.replace(detection(kind="update"), observed_at=later_text, event_id="e2")
    same_moment = msgspec.structs.replace(later, event_id="e3")
    counts = []
    for sent in (first, later, later, first, same_moment, same_moment):
        out = h.feed("detections", sent)
        counts.append((out.resent, h.engine.tables.cases[incident.incident_id]["incident"]["detections"]))
    assert counts == [(1, 1), (0, 2), (1, 2), (1, 2), (0, 3), (1, 3)]


def test_changelog_records_reusing_the_bytes_of_the_value_before_are_the_records_as_msgspec_writes_them(city):
    store = ChangelogStore({}, "changelog")
    engine = Engine(city, Tables.over(store))
    envs = envelopes(city, scripted_inputs(city))
    for number, start in enumerate(range(0, len(envs), 3)):
        engine.handle_batch(envs[start:start + 3], at=(0, number))
        pending, store.pending = store.pending, []
        assert [store.encode(key, record) for key, record in pending] == [wire.encode(r) for _, r in pending]
    assert store.reused > 0  # the shortcut was taken, not only the plain path


def test_a_value_before_that_is_not_the_value_last_sent_is_encoded_itself():
    store = ChangelogStore({}, "changelog")
    first, second, redone_from = {"n": 1}, {"n": 2}, {"n": 1}
    assert store.encode("k", [first, None, "in-1"]) == b'[{"n":1},null,"in-1"]'
    assert store.encode("k", [second, first, "in-2"]) == b'[{"n":2},{"n":1},"in-2"]' and store.reused == 1
    # a redone input: its value before is read back from the stored record, not the object last sent
    assert store.encode("k", [second, redone_from, "in-2"]) == b'[{"n":2},{"n":1},"in-2"]' and store.reused == 1


def test_the_changelog_keeps_the_bytes_of_a_bounded_number_of_keys():
    store = ChangelogStore({}, "changelog")
    store.RECENT_VALUES = 3
    values = [{"n": n} for n in range(5)]
    for n, value in enumerate(values):
        store.encode(f"k{n}", [value, None, "in"])
    assert list(store.recent) == ["k2", "k3", "k4"]


def test_an_incidents_violation_ids_are_its_marks_and_stored_once(city):
    h = Harness(city)
    starts = [detection(violation=f"v{n}", at=T0 + n) for n in (3, 1, 2)]
    outs = [h.feed("detections", d) for d in starts + [detection(violation="v1", kind="update", at=T0 + 9)]]
    [incident] = outs[-1].incidents.values()
    assert incident["violation_ids"] == ["cam-01/v3", "cam-01/v1", "cam-01/v2"]  # in arrival order, once each
    stored = h.engine.tables.cases[incident["incident_id"]]
    assert "violation_ids" not in stored["incident"] and list(stored["marks"]) == incident["violation_ids"]


def test_a_case_stored_with_violation_ids_and_no_marks_keeps_them(city):
    """A case written before the marks held the violation ids: its ids stay, a detection of one of them
    counts (it has no mark to be a re-send of), and the ids stay in order."""
    h = Harness(city)
    [incident] = h.feed("detections", detection(violation="v1")).incidents.values()
    h.feed("detections", detection(violation="v2", at=T0 + 1))
    case_id = incident["incident_id"]
    stored = json.loads(json.dumps(h.engine.tables.cases[case_id]))
    stored["incident"]["violation_ids"] = list(stored.pop("marks"))  # as the older worker wrote it
    fresh = Harness(city)  # a worker started on the state as the older one left it
    fresh.store.update(json.loads(json.dumps(h.store)))
    fresh.engine.tables.cases[case_id] = stored
    fresh.engine.tables.journal.commit()
    fresh.offsets = dict(h.offsets)
    out = fresh.feed("detections", detection(violation="v1", kind="update", at=T0 + 5))
    assert out.resent == 0
    assert out.incidents[case_id]["violation_ids"] == ["cam-01/v1", "cam-01/v2"]
    assert out.incidents[case_id]["detections"] == 3
