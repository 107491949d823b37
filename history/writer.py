"""Fold records from the topics into the system of record, idempotently by ids and by offsets.

One :meth:`HistoryWriter.write` is one transaction: the rows of a batch of records and the next
offset of every partition they came from.  Applying a record twice changes nothing (case events,
evidence links and alerts are inserted once by id; a snapshot replaces the stored one only when it is
newer), so a replay from any offset leaves the database as it was.  After the rows, the counted facts
of every touched case are derived again (:mod:`history.facts`).

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
from history.facts import derive, naive_utc, snapshot_columns

_FEEDBACK_ID = re.compile(r"[0-9a-f]{32}")
Change = tuple[str, Any]  # ("incident", Incident) | ("task", Task) | ("camera", CameraStatus) | ...


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
                 sla_minutes: Callable[[str], Optional[float]] = lambda scenario: None):
        self.engine, self.timezone, self.feedback_topic = engine, timezone, feedback_topic
        self.consumer, self.sla_minutes = consumer, sla_minutes
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """Where this consumer resumes: (topic, partition) -> the next offset to read."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(schema.positions).where(schema.positions.c.consumer == self.consumer))
            return {(row.topic, row.partition): row.next_offset for row in rows}

    def write(self, batch: list[Positioned]) -> list[Change]:
        """Apply the batch in one transaction and return what changed (for the live wall)."""
        with self.engine.begin() as connection:
            changes, touched = [], set()
            for item in batch:
                changes.extend(self._apply(connection, item.record, touched))
            self._refresh(connection, touched)
            self._save_positions(connection, batch)
        return changes

    # ------------------------------------------------------------ one record
    def _apply(self, connection: Connection, record: Optional[Record], touched: set[str]) -> list[Change]:
        if isinstance(record, Incident):
            touched.add(record.incident_id)
            return self._incident(connection, record)
        if isinstance(record, Task):
            touched.add(record.incident_id)
            return self._task(connection, record)
        if isinstance(record, CaseEvent):
            touched.add(record.incident_id)
            return self._case_event(connection, record)
        if isinstance(record, CameraStatus):
            return self._camera(connection, record)
        if isinstance(record, Alert):
            return self._alert(connection, record)
        if isinstance(record, DeadLetter):
            return self._dead_letter(connection, record)
        return []

    def _incident(self, connection: Connection, incident: Incident) -> list[Change]:
        row = {**snapshot_columns(incident), "record": incident.asdict_deep(), "filed_day": "",
               "rejected": False, "reworked": False, "escalated": False}
        statement = self._insert(schema.cases).values(row)
        kept = {k: statement.excluded[k] for k in (*snapshot_columns(incident), "record") if k != "incident_id"}
        statement = statement.on_conflict_do_update(
            index_elements=["incident_id"], set_=kept,
            where=schema.cases.c.updated_at <= statement.excluded.updated_at)  # a late older snapshot loses
        if not _changed(connection, statement.returning(schema.cases.c.incident_id)):
            return []
        self._link_evidence(connection, incident.incident_id, (e.sha256 for e in incident.evidence))
        return [("incident", incident)]

    def _task(self, connection: Connection, task: Task) -> list[Change]:
        row = {"task_id": task.task_id, "incident_id": task.incident_id, "officer_id": task.officer_id,
               "status": task.status, "assigned_at": naive_utc(task.assigned_at), "record": task.asdict_deep()}
        statement = self._insert(schema.tasks).values(row)
        connection.execute(statement.on_conflict_do_update(
            index_elements=["task_id"], set_={k: statement.excluded[k] for k in ("officer_id", "status", "record")}))
        return [("task", task)]

    def _case_event(self, connection: Connection, event: CaseEvent) -> list[Change]:
        row = {"event_id": event.event_id, "incident_id": event.incident_id, "seq": event.seq,
               "at": naive_utc(event.at), "action": event.action, "applied": event.applied,
               "to_state": event.to_state, "record": event.asdict_deep()}
        statement = self._insert(schema.case_events).values(row).on_conflict_do_nothing()
        if not _changed(connection, statement.returning(schema.case_events.c.event_id)):
            return []
        self._link_evidence(connection, event.incident_id, event.evidence)
        keys = set(_FEEDBACK_ID.findall(f"{event.source} {event.reason}")) | {event.event_id}
        if event.source:
            keys |= {event.source, re.split(r"[#\s]", event.source)[0]}
        self._outcomes(connection, keys, event.event_id, event.applied, event.reason, event.action,
                       event.incident_id, event.to_state)
        return [("case_event", event)]

    def _camera(self, connection: Connection, status: CameraStatus) -> list[Change]:
        row = {"camera_id": status.camera_id, "observed_at": naive_utc(status.observed_at),
               "record": status.asdict_deep()}
        statement = self._insert(schema.cameras).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=["camera_id"], set_={k: statement.excluded[k] for k in ("observed_at", "record")},
            where=schema.cameras.c.observed_at <= statement.excluded.observed_at)
        return [("camera", status)] if _changed(connection, statement.returning(schema.cameras.c.camera_id)) else []

    def _alert(self, connection: Connection, alert: Alert) -> list[Change]:
        row = {"alert_id": alert.alert_id, "at": naive_utc(alert.at), "record": alert.asdict_deep()}
        statement = self._insert(schema.alerts).values(row).on_conflict_do_nothing()
        if not _changed(connection, statement.returning(schema.alerts.c.alert_id)):
            return []
        if alert.kind == "escalated" and alert.incident_id:
            connection.execute(update(schema.cases).where(schema.cases.c.incident_id == alert.incident_id)
                               .values(escalated=True))
        return [("alert", alert)]

    def _dead_letter(self, connection: Connection, letter: DeadLetter) -> list[Change]:
        """A feedback the processor could not use at all (unknown case...) is refused with the letter's reason."""
        if letter.topic != self.feedback_topic:
            return []
        raw = _json_object(letter.raw)
        keys = {source_of(letter.topic, letter.partition, letter.offset), str(raw.get("feedback_id", ""))} - {""}
        self._outcomes(connection, keys, f"dead-letter:{letter.dead_letter_id}", False, letter.reason,
                       str(raw.get("action", ""))[:128], str(raw.get("incident_id", ""))[:128], None)
        return [("dead_letter", letter)]

    # ------------------------------------------------------------ shared rows
    def _link_evidence(self, connection: Connection, incident_id: str, hashes: Iterable[str]) -> None:
        rows = [{"sha256": sha, "incident_id": incident_id} for sha in set(hashes)]
        if rows:
            connection.execute(self._insert(schema.evidence).on_conflict_do_nothing(), rows)

    def _outcomes(self, connection: Connection, keys: set[str], source_id: str, applied: bool, reason: str,
                  action: str, incident_id: str, to_state: Optional[str]) -> None:
        rows = [{"lookup_key": key[:256], "source_id": source_id, "applied": applied, "reason": reason,
                 "action": action, "incident_id": incident_id, "to_state": to_state} for key in sorted(keys)]
        connection.execute(self._insert(schema.outcomes).on_conflict_do_nothing(), rows)

    def _refresh(self, connection: Connection, incident_ids: set[str]) -> None:
        """Derive the counted facts of these cases again from their snapshot, tasks and audit log."""
        if not incident_ids:
            return
        ids = sorted(incident_ids)
        snapshots = connection.execute(select(schema.cases.c.record).where(schema.cases.c.incident_id.in_(ids)))
        tasks = _grouped(connection, schema.tasks, ids, Task)
        events = _grouped(connection, schema.case_events, ids, CaseEvent)
        rows = []
        for (record,) in snapshots:
            incident = Incident.from_dict(_as_dict(record))
            facts = derive(incident, tasks.get(incident.incident_id, []), events.get(incident.incident_id, []),
                           self.timezone, self.sla_minutes(incident.scenario))
            rows.append({"case_id": incident.incident_id, **{f"new_{k}": v for k, v in facts.items()}})
        if rows:  # bound names differ from the columns': SQLAlchemy reserves those for the SET clause
            columns = {name[4:]: bindparam(name) for name in rows[0] if name != "case_id"}
            connection.execute(update(schema.cases).where(schema.cases.c.incident_id == bindparam("case_id"))
                               .values(columns), rows)

    def _save_positions(self, connection: Connection, batch: list[Positioned]) -> None:
        ends: dict[tuple[str, int], int] = {}
        for item in batch:
            ends[(item.topic, item.partition)] = max(ends.get((item.topic, item.partition), 0), item.offset + 1)
        for (topic, partition), next_offset in ends.items():
            statement = self._insert(schema.positions).values(consumer=self.consumer, topic=topic,
                                                              partition=partition, next_offset=next_offset)
            connection.execute(statement.on_conflict_do_update(
                index_elements=["consumer", "topic", "partition"], set_={"next_offset": next_offset},
                where=schema.positions.c.next_offset < next_offset))


def _changed(connection: Connection, statement: Any) -> bool:
    """Whether an upsert wrote its row (RETURNING, not rowcount: drivers disagree on it for ON CONFLICT)."""
    return connection.execute(statement).first() is not None


def _grouped(connection: Connection, table: Any, ids: list[str], record_type: Any) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for row in connection.execute(select(table.c.incident_id, table.c.record).where(table.c.incident_id.in_(ids))):
        grouped.setdefault(row.incident_id, []).append(record_type.from_dict(_as_dict(row.record)))
    return grouped


def _as_dict(value: Any) -> dict:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # the raw text is whatever the bad message held
        return {}
    return value if isinstance(value, dict) else {}
