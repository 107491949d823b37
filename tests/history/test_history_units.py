"""The system of record without Kafka: idempotent writes, queries, the one statistics definition; each test on
SQLite and on PostgreSQL."""
from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from datetime import date, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import inspect

from contract import Alert, CameraStatus, DeadLetter, Feedback, new_id, to_iso
from history import schema, statistics
from history.facts import local_day
from history.queries import CaseSearch
from history.writer import Positioned
from history_support import T0, case_event, make_incident, new_store, put, task
from web import reports


@pytest.fixture()
def db(database_setting: str):
    writer, store = new_store(database_setting)
    yield writer, store
    store.engine.dispose()


# ------------------------------------------------------------------ writing
def test_latest_snapshot_wins(db) -> None:
    writer, store = db
    put(writer, make_incident("ACCEPTED", T0 + timedelta(seconds=5)))
    assert put(writer, make_incident("DISPATCHED", T0)) == []
    assert store.incident("i1").state == "ACCEPTED"


def test_the_latest_camera_status_wins(db) -> None:
    writer, store = db
    status = CameraStatus(event_id=new_id(), camera_id="cam-01", state="offline", observed_at=to_iso(T0))
    later = msgspec.structs.replace(status, state="online", observed_at=to_iso(T0 + timedelta(seconds=30)))
    assert put(writer, later, status) == [("camera", later)]
    assert put(writer, status) == []
    assert store.cameras()["cam-01"].state == "online"


def test_a_replay_changes_nothing(db) -> None:
    writer, store = db
    records = [make_incident(), task(task_id="t1"), case_event(to_state="CLOSED", at=T0 + timedelta(minutes=30)),
               Alert(alert_id="a1", kind="new_incident", severity="info", at=to_iso(T0), message="new")]
    batch = [Positioned(r, "topic", 0, offset) for offset, r in enumerate(records)]
    assert len(writer.write(batch)) == 4
    before = _dump(store.engine)
    assert writer.write(batch) == [("incident", records[0]), ("task", records[1])]  # same rows, nothing new
    assert _dump(store.engine) == before
    assert writer.next_offsets() == {("topic", 0): 4}


def test_positions_only_move_forward(db) -> None:
    writer, _ = db
    writer.write([Positioned(None, "t", 1, 41)])
    writer.write([Positioned(None, "t", 1, 7)])
    assert writer.next_offsets() == {("t", 1): 42}


def _dump(engine) -> dict:
    with engine.connect() as connection:
        return {name: sorted(map(repr, connection.execute(table.select())))
                for name, table in schema.METADATA.tables.items() if name != "positions"}


def test_the_migrations_create_exactly_the_declared_tables(db) -> None:
    _, store = db
    found = inspect(store.engine)
    for name, table in schema.METADATA.tables.items():
        assert {c["name"] for c in found.get_columns(name)} == set(table.columns.keys()), name
        assert {i["name"] for i in found.get_indexes(name)} == {i.name for i in table.indexes}, name


# ------------------------------------------------------------------ feedback outcomes
def test_outcome_is_found_by_the_feedback_id_in_source_or_reason(db) -> None:
    writer, store = db
    by_source, by_reason = new_id(), new_id()
    put(writer, case_event(source=f"nonsite.feedback/2/17#{by_source}"),
        case_event(applied=False, reason=f"feedback {by_reason}: illegal transition"))
    assert store.outcome(by_source).applied is True
    assert store.outcome(by_reason).applied is False
    assert store.outcome(new_id()) is None


def test_outcome_is_found_by_the_feedback_position(db) -> None:
    writer, store = db
    put(writer, case_event(source="nonsite.feedback/3/41"))
    assert store.outcome(new_id(), "nonsite.feedback/3/41").applied is True
    assert store.outcome(new_id(), "nonsite.feedback/3/4") is None


def test_a_dead_lettered_feedback_is_a_refusal(db) -> None:
    writer, store = db
    feedback = Feedback(feedback_id=new_id(), incident_id="nope", action="accept", actor="O101", at=to_iso(T0))
    for topic in ("nonsite.detections", "nonsite.feedback"):
        put(writer, DeadLetter(dead_letter_id=new_id(), topic=topic, partition=1, offset=9, at=to_iso(T0),
                               reason="feedback for unknown case 'nope'", raw=feedback.to_json().decode()))
    verdict = store.outcome(feedback.feedback_id, "nonsite.feedback/1/9")
    assert (verdict.applied, verdict.reason, verdict.action) == (False, "feedback for unknown case 'nope'", "accept")
    assert store.outcome("nonsite.detections/1/9") is None


def test_a_refusal_outranks_other_events_of_the_same_feedback(db) -> None:
    writer, store = db
    feedback_id = new_id()
    put(writer, case_event(source=f"x#{feedback_id}"),
        case_event(applied=False, source=f"x#{feedback_id}", reason="no"))
    assert store.outcome(feedback_id).reason == "no"


def test_an_escalation_marks_the_case(db) -> None:
    writer, store = db
    put(writer, make_incident(incident_id="i9"))
    put(writer, Alert(alert_id="a", kind="escalated", severity="critical", at=to_iso(T0), message="late",
                      incident_id="i9"))
    assert store.is_escalated("i9") and not store.is_escalated("i1")


# ------------------------------------------------------------------ queries
def test_search_filters_pages_and_finds_by_plate(db) -> None:
    writer, store = db
    put(writer, *[make_incident(incident_id=f"c{i}", first_seen=T0 + timedelta(days=i), camera_id=f"cam-{i % 2}",
                                plate="京A88731" if i == 3 else None) for i in range(7)])
    page = store.search(CaseSearch(camera_id="cam-0", per_page=2, page=2))
    assert page.total == 4 and [c.incident_id for c in page.cases] == ["c2", "c0"]  # newest first
    assert [c.incident_id for c in store.search(CaseSearch(plate="京A88731")).cases] == ["c3"]
    days = CaseSearch(day_from=date(2026, 11, 2), day_to=date(2026, 11, 3))
    assert sorted(c.incident_id for c in store.search(days).cases) == ["c1", "c2"]


def test_uploads_and_revocations_outlive_the_process(tmp_path) -> None:
    writer, store = new_store(str(tmp_path / "h.sqlite"))
    store.add_upload("a" * 64, "O101", datetime(2026, 11, 1))
    store.revoke("token-1", datetime(2099, 1, 1))
    store.engine.dispose()
    _, again = new_store(str(tmp_path / "h.sqlite"))
    assert again.uploaded_by("O101", "a" * 64) and not again.uploaded_by("O102", "a" * 64)
    assert again.is_revoked("token-1") and not again.is_revoked("token-2")


# ------------------------------------------------------------------ statistics: the one definition
def _case(writer, name: str, closed_after: float | None, rejected: bool = False, officer: str = "O1",
          reopened: bool = False) -> None:
    state = "REJECTED" if rejected else ("CLOSED" if closed_after is not None else "DISPATCHED")
    put(writer, make_incident(state, incident_id=name, officer_id=officer, reopen_count=int(reopened)),
        task(name, officer, deadline_min=60))
    if closed_after is not None and not rejected:
        put(writer, case_event(incident_id=name, to_state="CLOSED", at=T0 + timedelta(minutes=closed_after)))


NOVEMBER = statistics.Period(date(2026, 11, 1), date(2026, 11, 30))


def test_rates_follow_the_published_definitions(db) -> None:
    writer, store = db
    for name, closed, rejected, reopened in (("a", 10, False, False), ("b", 70, False, False),
                                             ("c", None, False, False), ("d", None, True, False),
                                             ("e", 30, False, True)):
        _case(writer, name, closed, rejected, reopened=reopened)
    rows, total = statistics.summarise(store.engine, NOVEMBER, "officer")
    assert (total.filed, total.due, total.closed, total.on_time) == (5, 4, 3, 2)
    assert total.closure_rate == 0.75 and total.on_time_rate == 0.5 and total.rework_rate == 0.25
    assert total.false_alarm_rate == 0.2 and total.mean_minutes_to_close == round((10 + 70 + 30) / 3, 1)
    december = statistics.Period(date(2026, 12, 1), date(2026, 12, 2))
    assert statistics.summarise(store.engine, december, "grid")[1].filed == 0


def test_ranking_leaves_small_samples_unranked(db) -> None:
    writer, store = db
    for i in range(9):
        _case(writer, f"big{i}", 10, officer="big")
    _case(writer, "big9", None, officer="big")
    _case(writer, "tiny", 5, officer="tiny")
    rows, _ = statistics.summarise(store.engine, NOVEMBER, "officer")
    ranking = reports.ranking(rows, min_sample=10)
    assert [r.group for r in ranking.ranked] == ["big"] and [r.group for r in ranking.unranked] == ["tiny"]


def test_periods_use_local_days() -> None:
    period = reports.month_period("2026-12")
    assert (period.first, period.last) == (date(2026, 12, 1), date(2026, 12, 31))
    assert local_day(datetime(2026, 11, 30, 16, 30), "Asia/Shanghai") == "2026-12-01"  # 00:30 on 1 Dec there
    assert local_day(datetime(2026, 11, 30, 15, 30), "Asia/Shanghai") == "2026-11-30"


def test_trend_chart_is_well_formed_svg(db) -> None:
    writer, store = db
    _case(writer, "a", 10)
    _case(writer, "b", None)
    days = statistics.daily(store.engine, statistics.Period(date(2026, 11, 1), date(2026, 11, 3)))
    assert [d["filed"] for d in days] == [2, 0, 0] and days[0]["closure_rate"] == 0.5
    root = ElementTree.fromstring(reports.trend_svg(days))
    assert root.tag.endswith("svg") and len(root.findall("{http://www.w3.org/2000/svg}rect")) >= 4


def test_repeat_offenders_count_by_key_and_keep_no_plate(db) -> None:
    from nonsite.privacy import plate_key

    writer, store = db
    plates = ["京A88731", "京A88731", "京A88731", "沪B12345", "粤C99999", "粤C99999"]
    for index, plate in enumerate(plates):
        put(writer, msgspec.structs.replace(make_incident(incident_id=f"p{index}"), plate=plate,
                                            state="REJECTED" if index == 5 else "DISPATCHED"))
    put(writer, make_incident(incident_id="no-plate"))
    rows = statistics.repeat_offenders(store.engine, NOVEMBER)
    assert not any(plate in repr(rows) for plate in plates)
    assert [(r.plate_key, r.incidents, r.scenarios) for r in rows] == [(plate_key("京A88731"), 3, ["stray_dog"])]
