"""Fold records from the topics into the system of record, idempotently by ids and by offsets.

One :meth:`HistoryWriter.write` is one transaction: the rows of a batch of records and the next
offset of every partition they came from.  Applying a record twice changes nothing (case events,
evidence links and alerts are inserted once by id; a snapshot replaces the stored one only when it is
newer), so a replay from any offset leaves the database as it was.  After the rows, the counted facts
of every touched case are derived again (:mod:`history.facts`).

Each kind of record is written in bulk: what is already stored is read in one query, the new rows
go in one ``executemany`` of a statement built once (compiled once, then cached by SQLAlchemy).

Example::

    >>> from history.database import open_database
    >>> writer = HistoryWriter(open_database(":memory:"), "Asia/Shanghai", feedback_topic="nonsite.feedback")
    >>> writer.write([])
    []
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from contract import Alert, CameraStatus, CaseEvent, DeadLetter, Incident, Record, Task
from contract.position import source_of
from history import schema
from history.facts import RECORD_KEEPING_ACTIONS, Dispatch, Step, derive, naive_utc, snapshot_columns

_FEEDBACK_ID = re.compile(r"[0-9a-f]{32}")
Change = tuple[str, Any]  # ("incident", Incident) | ("task", Task) | ("camera", CameraStatus) | ...
KIND_OF = {Incident: "incident", Task: "task", CaseEvent: "case_event", CameraStatus: "camera", Alert: "alert",
           DeadLetter: "dead_letter"}


@dataclass(frozen=True)
class Positioned:
    """One record and where it was read: the writer stores ``offset + 1`` as the partition's next offset.

    ``record`` is None for a message that could not be used (it was dead-lettered): only its position counts."""

    record: Optional[Record]
    topic: str
    partition: int
    offset: int


class HistoryWriter:
    """Writes batches of records; ``sla_minutes(scenario)`` gives the fallback deadline of a case."""

    def __init__(self, engine: Engine, timezone: str, feedback_topic: str, consumer: str = "history",
                 sla_minutes: Callable[[str], Optional[float]] = lambda scenario: None,
                 labeller: Optional[Callable[[Connection, list[CaseEvent]], None]] = None):
        """``labeller`` sees the case events each batch stored, in its transaction (history.spot_labels)."""
        self.engine, self.timezone, self.feedback_topic = engine, timezone, feedback_topic
        self.consumer, self.sla_minutes, self.labeller = consumer, sla_minutes, labeller
        self.statements = _Statements(postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """Where this consumer resumes: (topic, partition) -> the next offset to read."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(schema.positions).where(schema.positions.c.consumer == self.consumer))
            return {(row.topic, row.partition): row.next_offset for row in rows}

    def write(self, batch: list[Positioned]) -> list[Change]:
        """Apply the batch in one transaction and return what changed (for the live wall), in batch order."""
        by_kind: dict[str, list[Any]] = {}
        for item in batch:
            if item.record is not None:
                by_kind.setdefault(KIND_OF[type(item.record)], []).append(item.record)
        with self.engine.begin() as connection:
            changed: set[int] = set()
            for kind, records in by_kind.items():
                changed |= {id(r) for r in getattr(self, f"_{kind}s")(connection, records)}
            touched = {r.incident_id for kind in ("incident", "task", "case_event") for r in by_kind.get(kind, [])}
            self._refresh(connection, touched)
            stored = [e for e in by_kind.get("case_event", []) if id(e) in changed]
            if self.labeller is not None and stored:
                self.labeller(connection, stored)
            self._save_positions(connection, batch)
        return [(KIND_OF[type(i.record)], i.record) for i in batch if i.record is not None and id(i.record) in changed]

    # ------------------------------------------------------------ each kind, in bulk; each returns what changed
    def _incidents(self, connection: Connection, incidents: list[Incident]) -> list[Incident]:
        cases = schema.cases.c
        stored = dict(connection.execute(select(cases.incident_id, cases.updated_at)
                                         .where(cases.incident_id.in_({i.incident_id for i in incidents}))).all())
        newest: dict[str, Incident] = {}
        for incident in incidents:  # a snapshot older than the stored one (or another in the batch) loses
            updated = naive_utc(incident.updated_at)
            known = newest.get(incident.incident_id)
            if updated >= stored.get(incident.incident_id, updated) and \
                    (known is None or updated >= naive_utc(known.updated_at)):
                newest[incident.incident_id] = incident
        rows = [{**snapshot_columns(i), "record": i.asdict_deep(), "filed_day": "", "rejected": False,
                 "reworked": False, "escalated": False} for i in newest.values()]
        self._execute(connection, self.statements.upsert_case, rows)
        self._link_evidence(connection, [(i.incident_id, sha) for i in newest.values() for e in i.evidence
                                         for sha in (e.sha256, *e.masked.values())])  # the masked copies too
        return list(newest.values())

    def _tasks(self, connection: Connection, tasks: list[Task]) -> list[Task]:
        latest = {t.task_id: t for t in tasks}  # the last in the batch is the latest of a task
        rows = [{"task_id": t.task_id, "incident_id": t.incident_id, "officer_id": t.officer_id, "status": t.status,
                 "assigned_at": naive_utc(t.assigned_at), "deadline": naive_utc(t.deadline),
                 "record": t.asdict_deep()} for t in latest.values()]
        self._execute(connection, self.statements.upsert_task, rows)
        return tasks

    def _case_events(self, connection: Connection, events: list[CaseEvent]) -> list[CaseEvent]:
        new = _not_stored(connection, schema.case_events.c.event_id, events, lambda e: e.event_id)
        self._execute(connection, self.statements.insert_case_event, [
            {"event_id": e.event_id, "incident_id": e.incident_id, "seq": e.seq, "at": naive_utc(e.at),
             "action": e.action, "applied": e.applied, "to_state": e.to_state, "record": e.asdict_deep()}
            for e in new])
        self._link_evidence(connection, [(e.incident_id, sha) for e in new for sha in e.evidence])
        self._execute(connection, self.statements.insert_outcome, [
            _outcome(key, e.event_id, e.applied, e.reason, e.action, e.incident_id, e.to_state)
            for e in new for key in _feedback_keys(e)])
        return new

    def _cameras(self, connection: Connection, statuses: list[CameraStatus]) -> list[CameraStatus]:
        stored = dict(connection.execute(select(schema.cameras.c.camera_id, schema.cameras.c.observed_at)).all())
        newest: dict[str, CameraStatus] = {}
        for status in statuses:
            observed = naive_utc(status.observed_at)
            known = newest.get(status.camera_id)
            if observed >= stored.get(status.camera_id, observed) and \
                    (known is None or observed >= naive_utc(known.observed_at)):
                newest[status.camera_id] = status
        self._execute(connection, self.statements.upsert_camera, [
            {"camera_id": s.camera_id, "observed_at": naive_utc(s.observed_at), "record": s.asdict_deep()}
            for s in newest.values()])
        return list(newest.values())

    def _alerts(self, connection: Connection, alerts: list[Alert]) -> list[Alert]:
        new = _not_stored(connection, schema.alerts.c.alert_id, alerts, lambda a: a.alert_id)
        self._execute(connection, self.statements.insert_alert, [
            {"alert_id": a.alert_id, "at": naive_utc(a.at), "record": a.asdict_deep()} for a in new])
        escalated = sorted({a.incident_id for a in new if a.kind == "escalated" and a.incident_id})
        if escalated:
            connection.execute(update(schema.cases).where(schema.cases.c.incident_id.in_(escalated))
                               .values(escalated=True))
        return new

    def _dead_letters(self, connection: Connection, letters: list[DeadLetter]) -> list[DeadLetter]:
        """A feedback the processor could not use at all (unknown case...) is refused with the letter's reason."""
        refused = [letter for letter in letters if letter.topic == self.feedback_topic]
        rows = []
        for letter in refused:
            raw = _json_object(letter.raw)
            keys = {source_of(letter.topic, letter.partition, letter.offset), str(raw.get("feedback_id", ""))}
            rows += [_outcome(key, f"dead-letter:{letter.dead_letter_id}", False, letter.reason,
                              str(raw.get("action", ""))[:128], str(raw.get("incident_id", ""))[:128], None)
                     for key in sorted(keys - {""})]
        self._execute(connection, self.statements.insert_outcome, rows)
        return refused

    # ------------------------------------------------------------ shared rows
    def _link_evidence(self, connection: Connection, links: Iterable[tuple[str, str]]) -> None:
        rows = [{"incident_id": incident_id, "sha256": sha} for incident_id, sha in sorted(set(links))]
        self._execute(connection, self.statements.insert_evidence, rows)

    @staticmethod
    def _execute(connection: Connection, statement: Any, rows: list[dict]) -> None:
        if rows:
            connection.execute(statement, rows)

    def _refresh(self, connection: Connection, incident_ids: set[str]) -> None:
        """Derive the counted facts of these cases again from their snapshot, tasks and audit log."""
        if not incident_ids:
            return
        ids = sorted(incident_ids)
        dispatches: dict[str, list[Dispatch]] = {}
        tasks = schema.tasks.c
        for row in connection.execute(select(tasks.incident_id, tasks.assigned_at, tasks.deadline, tasks.officer_id)
                                      .where(tasks.incident_id.in_(ids))):
            dispatches.setdefault(row.incident_id, []).append(Dispatch(row.assigned_at, row.deadline, row.officer_id))
        steps: dict[str, list[Step]] = {}
        events = schema.case_events.c
        counted = events.action.not_in(sorted(RECORD_KEEPING_ACTIONS))
        for row in connection.execute(select(events.incident_id, events.seq, events.at, events.applied,
                                             events.to_state).where(events.incident_id.in_(ids), counted)):
            steps.setdefault(row.incident_id, []).append(Step(row.seq, row.at, row.applied, row.to_state))
        rows = []
        for (record,) in connection.execute(select(schema.cases.c.record).where(schema.cases.c.incident_id.in_(ids))):
            incident = Incident.from_dict(_as_dict(record))
            facts = derive(incident, dispatches.get(incident.incident_id, []), steps.get(incident.incident_id, []),
                           self.timezone, self.sla_minutes(incident.scenario))
            rows.append({"case_id": incident.incident_id, **{f"new_{k}": v for k, v in facts.items()}})
        self._execute(connection, self.statements.refresh_case, rows)

    def _save_positions(self, connection: Connection, batch: list[Positioned]) -> None:
        ends: dict[tuple[str, int], int] = {}
        for item in batch:
            ends[(item.topic, item.partition)] = max(ends.get((item.topic, item.partition), 0), item.offset + 1)
        self._execute(connection, self.statements.save_position, [
            {"consumer": self.consumer, "topic": topic, "partition": partition, "next_offset": next_offset}
            for (topic, partition), next_offset in sorted(ends.items())])


class _Statements:
    """Every statement the writer runs, built once for the database's dialect."""

    def __init__(self, insert: Callable[[Any], Any]):
        cases = insert(schema.cases)
        kept = [c.name for c in schema.cases.columns if c.name in (*_SNAPSHOT_COLUMNS, "record")]
        self.upsert_case = cases.on_conflict_do_update(
            index_elements=["incident_id"], set_={name: cases.excluded[name] for name in kept},
            where=schema.cases.c.updated_at <= cases.excluded.updated_at)  # a later writer's newer snapshot wins
        tasks = insert(schema.tasks)
        self.upsert_task = tasks.on_conflict_do_update(index_elements=["task_id"], set_={
            name: tasks.excluded[name] for name in ("officer_id", "status", "deadline", "record")})
        cameras = insert(schema.cameras)
        self.upsert_camera = cameras.on_conflict_do_update(
            index_elements=["camera_id"], set_={name: cameras.excluded[name] for name in ("observed_at", "record")},
            where=schema.cameras.c.observed_at <= cameras.excluded.observed_at)
        self.insert_case_event = insert(schema.case_events).on_conflict_do_nothing()
        self.insert_alert = insert(schema.alerts).on_conflict_do_nothing()
        self.insert_outcome = insert(schema.outcomes).on_conflict_do_nothing()
        self.insert_evidence = insert(schema.evidence).on_conflict_do_nothing()
        positions = insert(schema.positions)
        self.save_position = positions.on_conflict_do_update(
            index_elements=["consumer", "topic", "partition"], set_={"next_offset": positions.excluded.next_offset},
            where=schema.positions.c.next_offset < positions.excluded.next_offset)
        facts = ("filed_day", "dispatched_at", "deadline_at", "closed_at", "minutes_to_close", "rejected", "reworked",
                 "escalated", "officer_id")  # bound names differ from the columns': SQLAlchemy reserves those
        self.refresh_case = update(schema.cases).where(schema.cases.c.incident_id == bindparam("case_id")) \
            .values({name: bindparam(f"new_{name}") for name in facts})


_SNAPSHOT_COLUMNS = ("scenario", "camera_id", "grid_id", "zone_id", "state", "officer_id", "plate", "plate_key",
                     "first_seen", "updated_at")


def _not_stored(connection: Connection, key: Any, records: list[Any], key_of: Callable[[Any], str]) -> list[Any]:
    """The records whose key is neither stored nor earlier in the batch."""
    stored = set(connection.execute(select(key).where(key.in_({key_of(r) for r in records}))).scalars())
    new = []
    for record in records:
        if key_of(record) not in stored:
            stored.add(key_of(record))
            new.append(record)
    return new


def _feedback_keys(event: CaseEvent) -> set[str]:
    """Every key a feedback's verdict is looked up by: its id (in the source or the reason), its position."""
    keys = set(_FEEDBACK_ID.findall(f"{event.source} {event.reason}")) | {event.event_id}
    if event.source:
        keys |= {event.source, re.split(r"[#\s]", event.source)[0]}
    return keys


def _outcome(key: str, source_id: str, applied: bool, reason: str, action: str, incident_id: str,
             to_state: Optional[str]) -> dict:
    return {"lookup_key": key[:256], "source_id": source_id, "applied": applied, "reason": reason,
            "action": action, "incident_id": incident_id, "to_state": to_state}


def _as_dict(value: Any) -> dict:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # the raw text is whatever the bad message held
        return {}
    return value if isinstance(value, dict) else {}
