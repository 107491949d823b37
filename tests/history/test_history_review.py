"""Alarms under operator review in the system of record (SQLite and PostgreSQL): an alarm awaiting review or
dismissed is no filed case (立案) and is counted apart; a confirmed one is filed when confirmed, its time to
close counted from then (docs/history.md, "One statistics definition")."""
from __future__ import annotations

import sys
from datetime import date, timedelta

import pytest

from history import statistics
from history.facts import TERMINAL_STATES, UNFILED_STATES
from history.queries import FiledCases
from history_support import T0, case_event, make_incident, new_store, put, task
from web.cli import write_report


@pytest.fixture()
def db(database_setting: str):
    writer, store = new_store(database_setting)
    yield writer, store
    store.engine.dispose()


def step(incident_id: str, seq: int, action: str, to_state: str, minutes: float):
    return case_event(incident_id=incident_id, seq=seq, action=action, to_state=to_state,
                      at=T0 + timedelta(minutes=minutes))


def test_review_states_are_unfiled_and_a_dismissal_ends_the_alarm() -> None:
    assert UNFILED_STATES == {"AWAITING_REVIEW", "DISMISSED"} and "DISMISSED" in TERMINAL_STATES
    assert "AWAITING_REVIEW" not in TERMINAL_STATES  # it stays on the wall until someone decides


def test_dismissed_and_awaiting_alarms_are_counted_apart_from_the_filed_cases(db, capsys) -> None:
    writer, store = db
    kinds = dict(scenario="material_piling", camera_id="cam-03", grid_id="G02")
    put(writer, make_incident("AWAITING_REVIEW", incident_id="waiting", **kinds),
        step("waiting", 1, "detect", "AWAITING_REVIEW", 0))
    put(writer, make_incident("DISMISSED", T0 + timedelta(minutes=5), incident_id="dismissed", **kinds),
        step("dismissed", 1, "detect", "AWAITING_REVIEW", 0), step("dismissed", 2, "dismiss", "DISMISSED", 5))
    # confirmed 3 hours after it was seen, dispatched, closed 20 minutes after the confirmation
    confirmed = make_incident("CLOSED", T0 + timedelta(minutes=200), incident_id="confirmed", **kinds)
    put(writer, confirmed, task("confirmed", assigned=T0 + timedelta(minutes=180)),
        step("confirmed", 1, "detect", "AWAITING_REVIEW", 0), step("confirmed", 2, "confirm", "DETECTED", 180),
        step("confirmed", 3, "dispatch", "DISPATCHED", 180), step("confirmed", 4, "close", "CLOSED", 200))
    put(writer, make_incident("DISPATCHED", incident_id="auto"), task("auto"))  # a stray dog, filed at once
    november = statistics.Period(date(2026, 11, 1), date(2026, 11, 30))
    rows, total = statistics.summarise(store.engine, november, "scenario")
    piling = next(r for r in rows if r.group == "material_piling")
    assert (piling.filed, piling.due, piling.closed, piling.false_alarms) == (1, 1, 1, 0)
    assert (piling.dismissed_in_review, piling.awaiting_review) == (1, 1)
    assert piling.closure_rate == 1.0 and piling.mean_minutes_to_close == 20.0  # from the filing, not the sighting
    assert (total.filed, total.dismissed_in_review, total.awaiting_review) == (2, 1, 1)
    assert total.as_dict()["dismissed_in_review"] == 1
    write_report([r.as_dict() for r in rows], total.as_dict(), "scenario", True, sys.stdout)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(",dismissed_in_review,awaiting_review") and lines[1].startswith("material_piling,1,")
    assert lines[1].endswith(",1,1")
    days = {d["day"]: d for d in statistics.daily(store.engine, november)}
    assert days["2026-11-01"]["dismissed_in_review"] == 1 and days["2026-11-01"]["filed"] == 2
    # Open311 publishes filed cases only: an alarm under review is nobody's service request
    listed = store.filed_cases(FiledCases(incident_ids=("waiting", "dismissed", "confirmed", "auto"), limit=10))
    assert sorted(c.incident.incident_id for c in listed) == ["auto", "confirmed"]
