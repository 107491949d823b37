"""Legal holds, and the steps of a case's audit log that the system of record writes itself.

A legal hold (a supervisor's, with a reason) keeps a case's evidence from the retention purge
(:mod:`history.retention`) until it is released (with a reason).  Each hold is a row of ``holds`` and a step
of the case's audit log.

The case processor is the only writer of the case-events topic, and it rebuilds a case by replaying its
own steps; a hold, its release and a purge change no state, so they are not its business.  They are written
straight into ``case_events`` (:func:`record_step`): their own actions (:data:`RECORD_KEEPING_ACTIONS`, which
the counted facts leave out), applied, from = to = the case's state, ``seq`` after the case's last recorded
step, actor the supervisor (or ``retention``), source ``history``.  The worker never reads them.

Example::

    >>> from history.database import open_database
    >>> engine = open_database(":memory:")
    >>> hold_in_force(engine, "i1"), holds_of(engine, "i1")
    (None, [])
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Optional

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import IntegrityError

from contract import CaseEvent, new_id, to_iso
from history import schema
from history.facts import RECORD_KEEPING_ACTIONS, naive_utc

LEGAL_HOLD, LEGAL_HOLD_RELEASED, EVIDENCE_PURGED = "legal_hold", "legal_hold_released", "evidence_purged"
assert RECORD_KEEPING_ACTIONS == {LEGAL_HOLD, LEGAL_HOLD_RELEASED, EVIDENCE_PURGED}
SOURCE = "history"  # the ``source`` of the steps written here: no topic position caused them
REASON_MAX = 500


class CustodyError(ValueError):
    """A hold that cannot be placed or released; ``str()`` is the one line for the caller."""


class NoSuchCase(CustodyError):
    pass


class HoldConflict(CustodyError):
    """A hold on a case already held, or a release of a case not held."""


@dataclass(frozen=True)
class Hold:
    """One legal hold: who placed it, when and why; and who released it, when and why (None while in force)."""

    incident_id: str
    held_by: str
    held_at: datetime  # naive UTC, as the tables hold times
    reason: str
    released_by: Optional[str] = None
    released_at: Optional[datetime] = None
    release_reason: Optional[str] = None


def place_hold(engine: Engine, incident_id: str, person_id: str, reason: str,
               at: Optional[datetime] = None) -> tuple[Hold, CaseEvent]:
    """Put the case on legal hold: a ``holds`` row and a ``legal_hold`` step, in one transaction."""
    reason, at = _reason(reason, "a legal hold"), at or datetime.utcnow()
    with engine.begin() as connection:
        _case_state(connection, incident_id)
        held = _in_force(connection, incident_id)
        if held is not None:
            raise HoldConflict(_already_held(held))
        try:
            with connection.begin_nested():
                connection.execute(schema.holds.insert().values(incident_id=incident_id, held_by=person_id,
                                                                held_at=at, reason=reason))
        except IntegrityError:  # another supervisor's hold went in meanwhile (the unique index of holds in force)
            raise HoldConflict(_already_held(_in_force(connection, incident_id))) from None
        event = record_step(connection, incident_id, LEGAL_HOLD, person_id, reason, at)
    return Hold(incident_id, person_id, at, reason), event


def release_hold(engine: Engine, incident_id: str, person_id: str, reason: str,
                 at: Optional[datetime] = None) -> tuple[Hold, CaseEvent]:
    """Release the hold in force: the row completed and a ``legal_hold_released`` step, in one transaction."""
    reason, at = _reason(reason, "releasing a legal hold"), at or datetime.utcnow()
    with engine.begin() as connection:
        _case_state(connection, incident_id)
        held = _in_force(connection, incident_id)
        if held is None:
            raise HoldConflict(f"incident_id: case '{incident_id}' is not on legal hold")
        rows = schema.holds.c
        connection.execute(schema.holds.update().where(rows.incident_id == incident_id, rows.released_at.is_(None))
                           .values(released_by=person_id, released_at=at, release_reason=reason))
        event = record_step(connection, incident_id, LEGAL_HOLD_RELEASED, person_id, reason, at)
    released = Hold(held.incident_id, held.held_by, held.held_at, held.reason, person_id, at, reason)
    return released, event


def hold_in_force(engine: Engine, incident_id: str) -> Optional[Hold]:
    with engine.connect() as connection:
        return _in_force(connection, incident_id)


def holds_of(engine: Engine, incident_id: str) -> list[Hold]:
    """Every hold of the case, oldest first."""
    rows = schema.holds.c
    query = select(*_HOLD_COLUMNS).where(rows.incident_id == incident_id).order_by(rows.held_at, rows.id)
    with engine.connect() as connection:
        return [Hold(**row._asdict()) for row in connection.execute(query)]


def record_step(connection: Connection, incident_id: str, action: str, actor: str, reason: str, at: datetime,
                evidence: Iterable[str] = ()) -> CaseEvent:
    """Append a record-keeping step to the case's audit log (``case_events``): applied, from = to = the case's
    state, ``seq`` after the last recorded step.  Raises :class:`NoSuchCase`."""
    if action not in RECORD_KEEPING_ACTIONS:
        raise ValueError(f"action: {action!r} is a step of the case processor, not of the record")
    state, record = _case_state(connection, incident_id)
    events = schema.case_events.c
    last = connection.execute(select(func.max(events.seq)).where(events.incident_id == incident_id)).scalar()
    event = CaseEvent(event_id=f"{action}:{new_id()}", incident_id=incident_id, seq=(last or 0) + 1, at=to_iso(at),
                      actor=actor, action=action, from_state=state, to_state=state, applied=True, reason=reason,
                      evidence=sorted(set(evidence)), task_id=record.get("task_id"),
                      officer_id=record.get("officer_id"), source=SOURCE)
    connection.execute(schema.case_events.insert().values(
        event_id=event.event_id, incident_id=incident_id, seq=event.seq, at=naive_utc(event.at), action=action,
        applied=True, to_state=state, record=event.asdict_deep()))
    return event


_HOLD_COLUMNS = tuple(schema.holds.c[name] for name in (
    "incident_id", "held_by", "held_at", "reason", "released_by", "released_at", "release_reason"))


def _in_force(connection: Connection, incident_id: str) -> Optional[Hold]:
    rows = schema.holds.c
    row = connection.execute(select(*_HOLD_COLUMNS).where(rows.incident_id == incident_id,
                                                          rows.released_at.is_(None))).first()
    return Hold(**row._asdict()) if row is not None else None


def _case_state(connection: Connection, incident_id: str) -> tuple[str, dict[str, Any]]:
    cases = schema.cases.c
    row = connection.execute(select(cases.state, cases.record).where(cases.incident_id == incident_id)).first()
    if row is None:
        raise NoSuchCase(f"incident_id: unknown incident '{incident_id}'")
    record = json.loads(row.record) if isinstance(row.record, (str, bytes)) else row.record
    return row.state, record if isinstance(record, dict) else {}


def _reason(reason: str, what: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise CustodyError(f"reason: {what} needs a reason")
    if len(text) > REASON_MAX:
        raise CustodyError(f"reason: at most {REASON_MAX} characters, got {len(text)}")
    return text


def _already_held(held: Optional[Hold]) -> str:
    if held is None:
        return "incident_id: the case is already on legal hold"
    return (f"incident_id: case '{held.incident_id}' is already on legal hold (by {held.held_by} since "
            f"{to_iso(held.held_at)}: {held.reason})")
