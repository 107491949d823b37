"""Evidence custody in the system of record, without Kafka: legal holds, the retention purge, the access log
search and the retention setting; each database test on SQLite and on PostgreSQL."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select, update

from history import schema, statistics
from history.custody import (CustodyError, HoldConflict, NoSuchCase, hold_in_force, holds_of, place_hold,
                             release_hold)
from history.queries import AccessSearch
from history.retention import finish_deletions, purge_case, purge_plan, purged_at
from history_support import T0, case_event, make_incident, new_store, put
from nonsite.config import ConfigError, load_city
from nonsite.evidence import EvidenceStore

PROJECT = Path(__file__).resolve().parents[2]
DAYS = 1827
NOW = datetime.utcnow()
CUTOFF = NOW - timedelta(days=DAYS)
LONG_AGO = T0 - timedelta(days=6 * 365)  # a case closed then is past the five years
RECENTLY = T0  # November 2026: well within them


@pytest.fixture()
def db(database_setting: str):
    writer, store = new_store(database_setting)
    yield writer, store
    store.engine.dispose()


@pytest.fixture()
def files(tmp_path: Path) -> EvidenceStore:
    return EvidenceStore(tmp_path / "evidence")


def picture(files: EvidenceStore, label: str):
    return files.put(b"\xff\xd8\xff" + label.encode() * 50, "annotated")


def closed_case(writer, name: str, when: datetime, *evidence, state: str = "CLOSED") -> None:
    put(writer, make_incident(state, when, name, first_seen=when - timedelta(hours=1), evidence=list(evidence)))


def steps(store, incident_id: str) -> list[tuple]:
    return [(e.seq, e.action, e.actor, e.from_state, e.to_state, e.applied, e.reason)
            for e in store.history(incident_id)]


# ------------------------------------------------------------------ legal holds
def test_a_hold_and_its_release_are_rows_and_steps_of_the_audit_log(db) -> None:
    writer, store = db
    put(writer, make_incident("CLOSED"), case_event(to_state="CLOSED", seq=4, action="verify"))
    hold, step = place_hold(store.engine, "i1", "U002", "  行政诉讼 (2027)浙0102行初12号 ")
    assert (hold.held_by, hold.reason, hold.released_at) == ("U002", "行政诉讼 (2027)浙0102行初12号", None)
    assert hold_in_force(store.engine, "i1") == hold
    released, _ = release_hold(store.engine, "i1", "U003", "judgment final")
    assert hold_in_force(store.engine, "i1") is None
    assert holds_of(store.engine, "i1") == [released]
    assert (released.held_by, released.released_by, released.release_reason) == ("U002", "U003", "judgment final")
    assert steps(store, "i1")[1:] == [
        (5, "legal_hold", "U002", "CLOSED", "CLOSED", True, "行政诉讼 (2027)浙0102行初12号"),
        (6, "legal_hold_released", "U003", "CLOSED", "CLOSED", True, "judgment final")]
    assert step.seq == 5 and step.source == "history"


def test_a_hold_needs_a_reason_a_known_case_and_no_hold_in_force(db) -> None:
    writer, store = db
    put(writer, make_incident("CLOSED"))
    for blank in ("", "   "):
        with pytest.raises(CustodyError, match="^reason: a legal hold needs a reason$"):
            place_hold(store.engine, "i1", "U002", blank)
    with pytest.raises(NoSuchCase, match="^incident_id: unknown incident 'nope'$"):
        place_hold(store.engine, "nope", "U002", "court")
    with pytest.raises(HoldConflict, match="is not on legal hold"):
        release_hold(store.engine, "i1", "U002", "done")
    place_hold(store.engine, "i1", "U002", "court")
    with pytest.raises(HoldConflict, match="already on legal hold \\(by U002"):
        place_hold(store.engine, "i1", "U003", "another court")
    with pytest.raises(CustodyError, match="^reason: releasing a legal hold needs a reason$"):
        release_hold(store.engine, "i1", "U002", " ")
    assert len(holds_of(store.engine, "i1")) == 1 and [s[1] for s in steps(store, "i1")] == ["legal_hold"]


def test_only_one_hold_is_in_force_even_if_two_are_written_at_once(db) -> None:
    writer, store = db
    put(writer, make_incident("CLOSED"))
    place_hold(store.engine, "i1", "U002", "court")
    with pytest.raises(Exception, match="(?i)unique"):  # what a second, racing insert meets: the partial index
        with store.engine.begin() as connection:
            connection.execute(schema.holds.insert().values(incident_id="i1", held_by="U003", held_at=NOW,
                                                            reason="race"))


def test_record_keeping_steps_are_not_counted_as_closing_or_reopening(db) -> None:
    writer, store = db
    closing = T0 + timedelta(minutes=30)
    put(writer, make_incident("CLOSED"), case_event(to_state="CLOSED", at=closing, seq=3))
    period = statistics.Period(T0.date(), T0.date() + timedelta(days=29))
    before = statistics.summarise(store.engine, period, "scenario")[1]
    place_hold(store.engine, "i1", "U002", "court")
    release_hold(store.engine, "i1", "U002", "over")
    put(writer, make_incident("CLOSED", T0 + timedelta(minutes=31)))  # a later snapshot: the facts derived again
    facts = store.facts("i1")
    assert (facts.closed_at, facts.minutes_to_close, facts.reworked) == (closing.replace(tzinfo=None), 30.0, False)
    assert statistics.summarise(store.engine, period, "scenario")[1] == before


# ------------------------------------------------------------------ the purge
def test_the_purge_deletes_old_evidence_only(db, files) -> None:
    writer, store = db
    old, held, recent, shared = (picture(files, name) for name in ("old", "held", "recent", "shared"))
    rejected, still_open = picture(files, "rejected"), picture(files, "open")
    closed_case(writer, "old", LONG_AGO, old, shared)
    closed_case(writer, "held", LONG_AGO, held)
    closed_case(writer, "recent", RECENTLY, recent, shared)
    closed_case(writer, "rejected", LONG_AGO, rejected, state="REJECTED")
    closed_case(writer, "open", LONG_AGO, still_open, state="ARRIVED")
    place_hold(store.engine, "held", "U002", "court")
    plans = {plan.incident_id: plan for plan in purge_plan(store.engine, files, CUTOFF, NOW)}
    assert sorted(plans) == ["old", "rejected"]
    assert [f.sha256 for f in plans["old"].files] == [old.sha256] and plans["old"].kept == (shared.sha256,)
    assert plans["old"].bytes == files.locate(old.sha256).stat().st_size
    for plan in plans.values():
        purge_case(store.engine, files, plan, DAYS, NOW)
    assert files.locate(old.sha256) is None and files.locate(rejected.sha256) is None
    assert all(files.locate(e.sha256) for e in (held, recent, shared, still_open))
    assert set(purged_at(store.engine, [e.sha256 for e in (old, rejected, shared, held)])) == {old.sha256,
                                                                                              rejected.sha256}
    assert list(purge_plan(store.engine, files, CUTOFF)) == []  # nothing left to do


def test_each_purge_is_a_step_and_the_hashes_stay(db, files) -> None:
    writer, store = db
    first, second = picture(files, "first"), picture(files, "second")
    closed_case(writer, "old", LONG_AGO, first)
    put(writer, case_event(incident_id="old", seq=7, action="resolve", to_state="RESOLVED"))
    put(writer, case_event(incident_id="old", seq=8, action="verify", to_state="CLOSED", at=LONG_AGO))
    with store.engine.begin() as connection:  # the officer's photo, linked as the writer links a step's files
        connection.execute(schema.evidence.insert().values(sha256=second.sha256, incident_id="old"))
    [plan] = purge_plan(store.engine, files, CUTOFF, NOW)
    event = purge_case(store.engine, files, plan, DAYS, NOW)
    assert (event.seq, event.action, event.actor, event.from_state, event.to_state, event.applied) == (
        9, "evidence_purged", "retention", "CLOSED", "CLOSED", True)
    assert event.evidence == sorted([first.sha256, second.sha256])
    assert "2 file(s)" in event.reason and "history.evidence_retention_days = 1827" in event.reason
    assert store.history("old")[-1] == event
    assert store.incident("old").evidence[0].sha256 == first.sha256
    assert store.incidents_with_evidence(second.sha256) == {"old"}
    assert store.facts("old").closed_at == LONG_AGO.replace(tzinfo=None)


def test_masked_copies_go_with_their_picture(db, files) -> None:
    writer, store = db
    original, subject, public = picture(files, "original"), picture(files, "subject"), picture(files, "public")
    closed_case(writer, "old", LONG_AGO, original)
    with store.engine.begin() as connection:  # the snapshot as the detector's masked copies make it
        record = connection.execute(select(schema.cases.c.record)).scalar()
        record = json.loads(record) if isinstance(record, str) else record
        record["evidence"][0]["masked"] = {"subject": subject.sha256, "public": public.sha256}
        connection.execute(update(schema.cases).values(record=record))
    [plan] = purge_plan(store.engine, files, CUTOFF, NOW)
    assert sorted(f.sha256 for f in plan.files) == sorted(e.sha256 for e in (original, subject, public))
    purge_case(store.engine, files, plan, DAYS, NOW)
    assert not any(files.locate(e.sha256) for e in (original, subject, public))


def test_a_file_of_two_old_cases_is_listed_in_both_steps(db, files) -> None:
    writer, store = db
    shared = picture(files, "shared")
    closed_case(writer, "a", LONG_AGO, shared)
    closed_case(writer, "b", LONG_AGO, shared)
    for plan in purge_plan(store.engine, files, CUTOFF, NOW):  # as the command runs: purging while reading
        purge_case(store.engine, files, plan, DAYS, NOW)
    assert [store.history(name)[-1].evidence for name in ("a", "b")] == [[shared.sha256]] * 2


def test_a_dry_run_changes_nothing_and_a_stopped_run_is_finished(db, files) -> None:
    writer, store = db
    old = picture(files, "old")
    closed_case(writer, "old", LONG_AGO, old)
    listed = list(purge_plan(store.engine, files, CUTOFF))
    assert listed == list(purge_plan(store.engine, files, CUTOFF)) and files.locate(old.sha256)
    assert store.history("old") == [] and purged_at(store.engine, [old.sha256]) == {}
    with store.engine.begin() as connection:  # a run stopped after recording, before deleting
        connection.execute(schema.purged_files.insert().values(sha256=old.sha256, purged_at=NOW, bytes=1))
    assert finish_deletions(store.engine, files) == 1
    assert files.locate(old.sha256) is None and finish_deletions(store.engine, files) == 0


def test_a_case_held_after_it_was_listed_is_not_purged(db, files) -> None:
    writer, store = db
    old = picture(files, "old")
    closed_case(writer, "old", LONG_AGO, old)
    [plan] = purge_plan(store.engine, files, CUTOFF)
    place_hold(store.engine, "old", "U002", "court")
    assert purge_case(store.engine, files, plan, DAYS) is None and files.locate(old.sha256)


# ------------------------------------------------------------------ the access log
def test_the_access_log_is_searched_by_person_case_file_role_and_time(db) -> None:
    _, store = db
    sha, other = "a" * 64, "b" * 64
    store.log_evidence_view("U001", "operator", sha, {"c1", "c2"}, at=T0.replace(tzinfo=None))
    store.log_evidence_view("O101", "officer", other, set(), reason="复核", at=T0.replace(tzinfo=None)
                            + timedelta(hours=1))
    store.log_access("U002", "supervisor", "export", "c1", "c1", at=T0.replace(tzinfo=None) + timedelta(days=1))
    found = store.search_accesses
    assert [(r.person_id, r.incident_id) for r in found(AccessSearch()).accesses] == [
        ("U002", "c1"), ("O101", None), ("U001", "c2"), ("U001", "c1")]  # newest first
    assert {r.what for r in found(AccessSearch(incident_id="c1")).accesses} == {"evidence", "export"}
    assert found(AccessSearch(sha256=sha)).total == 2
    assert found(AccessSearch(role="officer")).accesses[0].reason == "复核"
    assert found(AccessSearch(person_id="U002")).accesses[0].target == "c1"
    day = T0.replace(tzinfo=None)
    assert found(AccessSearch(since=day + timedelta(minutes=30), until=day + timedelta(hours=2))).total == 1
    page = found(AccessSearch(per_page=3, page=2))
    assert (page.total, len(page.accesses), page.accesses[0].person_id) == (4, 1, "U001")


# ------------------------------------------------------------------ the setting
def city_folder(tmp_path: Path, **history: object) -> Path:
    folder = tmp_path / "configs"
    shutil.copytree(PROJECT / "configs", folder)
    system = yaml.safe_load((folder / "nonsite.yaml").read_text(encoding="utf-8"))
    system["history"] = history
    (folder / "nonsite.yaml").write_text(yaml.safe_dump(system, allow_unicode=True), encoding="utf-8")
    return folder


def test_the_retention_defaults_to_five_years(tmp_path: Path) -> None:
    assert load_city(city_folder(tmp_path)).system.history.evidence_retention_days == 1827
    assert load_city(PROJECT / "configs").system.history.evidence_retention_days == 1827


@pytest.mark.parametrize("days", [0, 179, 36_501, 7.5, "forever", True, None])
def test_a_wrong_retention_is_one_line(tmp_path: Path, days: object) -> None:
    folder = city_folder(tmp_path, evidence_retention_days=days)
    with pytest.raises(ConfigError) as caught:
        load_city(folder)
    assert str(caught.value) == (f"{folder}/nonsite.yaml: history.evidence_retention_days: must be a whole number "
                                 f"of days from 180 (the six months to sue) to 36500; got {days!r}")
