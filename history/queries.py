"""Questions asked of the system of record: one case, the wall's cases, a search, tasks, audit logs.

Every answer is read from the database when asked, so the web app's memory does not grow with the
history and a restart has nothing to rebuild.  Records come back as the contract's types.

Example::

    >>> from history.database import open_database
    >>> store = CaseStore(open_database(":memory:"))
    >>> store.incident("nope") is None, store.search(CaseSearch(camera_id="cam-1")).total
    (True, 0)
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Optional

from sqlalchemy import Engine, and_, func, or_, select

from contract import Alert, CameraStatus, CaseEvent, Incident, Task
from history import schema
from history.facts import TERMINAL_STATES, UNFILED_STATES
from nonsite.privacy import plate_key

OPEN_TASK_STATUSES = ("assigned", "accepted")
WALL_MAX = 5000
DONE_TASKS_SHOWN = 50  # an officer's finished tasks listed beside the open ones


@dataclass(frozen=True)
class Verdict:
    """The case processor's answer to one feedback: applied, or refused with the reason."""

    applied: bool
    reason: str
    action: str
    incident_id: str
    to_state: Optional[str] = None


@dataclass(frozen=True)
class CaseSearch:
    """Filters of a case search; all optional, combined with AND. Days are the city's local dates."""

    incident_id: Optional[str] = None
    camera_id: Optional[str] = None
    grid_id: Optional[str] = None
    scenario: Optional[str] = None
    state: Optional[str] = None
    plate: Optional[str] = None
    day_from: Optional[date] = None
    day_to: Optional[date] = None
    page: int = 1
    per_page: int = 50


@dataclass(frozen=True)
class CasePage:
    cases: list[Incident]
    total: int
    page: int
    per_page: int


@dataclass(frozen=True)
class CaseFacts:
    """One case with the facts :mod:`history.facts` derived for it (naive UTC times, as the tables hold)."""

    incident: Incident
    dispatched_at: Optional[datetime]
    deadline_at: Optional[datetime]
    closed_at: Optional[datetime]
    minutes_to_close: Optional[float]
    rejected: bool
    reworked: bool


@dataclass(frozen=True)
class FiledCases:
    """Filters of :meth:`CaseStore.filed_cases`, combined with AND; filing times are naive UTC, both ends included.

    ``closed``: True for the finished cases (closed or rejected, :data:`TERMINAL_STATES`), False for the others."""

    scenarios: tuple[str, ...] = ()
    closed: Optional[bool] = None
    filed_from: Optional[datetime] = None
    filed_to: Optional[datetime] = None
    incident_ids: tuple[str, ...] = ()
    offset: int = 0
    limit: int = 1000


@dataclass(frozen=True)
class Access:
    """One row of the access log: who looked at what (an evidence file, a case export), when and why."""

    at: datetime
    person_id: str
    role: str
    what: str
    target: str
    incident_id: Optional[str]
    reason: str


@dataclass(frozen=True)
class AccessSearch:
    """Filters of an access log search, combined with AND; ``since``/``until`` naive UTC, ``until`` excluded."""

    person_id: Optional[str] = None
    role: Optional[str] = None
    incident_id: Optional[str] = None
    sha256: Optional[str] = None
    what: Optional[str] = None
    since: Optional[datetime] = None
    until: Optional[datetime] = None
    page: int = 1
    per_page: int = 50


@dataclass(frozen=True)
class AccessPage:
    accesses: list[Access]
    total: int
    page: int
    per_page: int


def token_hash(token: str) -> str:
    """Revoked tokens are kept by their hash: the table never holds a usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


class CaseStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    # ------------------------------------------------------------ cases
    def incident(self, incident_id: str) -> Optional[Incident]:
        found = self._scalar(select(schema.cases.c.record).where(schema.cases.c.incident_id == incident_id))
        return Incident.from_dict(_as_dict(found)) if found is not None else None

    def is_escalated(self, incident_id: str) -> bool:
        return bool(self._scalar(select(schema.cases.c.escalated).where(schema.cases.c.incident_id == incident_id)))

    def wall_incidents(self, since: datetime, scenario: Optional[str] = None, grid: Optional[str] = None,
                       state: Optional[str] = None) -> list[Incident]:
        """Open cases, and finished ones updated since ``since`` (naive UTC); with ``state``, every case in it."""
        cases = schema.cases.c
        query = select(cases.record)
        if state:
            query = query.where(cases.state == state.upper())
        else:
            query = query.where(or_(cases.state.not_in(sorted(TERMINAL_STATES)), cases.updated_at >= since))
        if scenario:
            query = query.where(cases.scenario == scenario)
        if grid:
            query = query.where(cases.grid_id == grid)
        query = query.order_by(cases.first_seen.desc()).limit(WALL_MAX)
        return self._records(query, Incident)

    def search(self, search: CaseSearch) -> CasePage:
        """One page of the cases the filters keep, newest first, and how many there are in all."""
        conditions = _search_conditions(search)
        cases = schema.cases.c
        query = select(cases.record).where(*conditions).order_by(cases.first_seen.desc(), cases.incident_id)
        query = query.offset((search.page - 1) * search.per_page).limit(search.per_page)
        total = self._scalar(select(func.count()).select_from(schema.cases).where(*conditions)) or 0
        return CasePage(self._records(query, Incident), int(total), search.page, search.per_page)

    def count_cases(self) -> int:
        return int(self._scalar(select(func.count()).select_from(schema.cases)) or 0)

    def incidents_with_evidence(self, sha256: str) -> set[str]:
        query = select(schema.evidence.c.incident_id).where(schema.evidence.c.sha256 == sha256)
        with self.engine.connect() as connection:
            return {row.incident_id for row in connection.execute(query)}

    def history(self, incident_id: str) -> list[CaseEvent]:
        events = schema.case_events.c
        query = select(events.record).where(events.incident_id == incident_id).order_by(events.seq, events.at)
        return self._records(query, CaseEvent)

    # ------------------------------------------------------------ tasks
    def task(self, task_id: str) -> Optional[Task]:
        found = self._scalar(select(schema.tasks.c.record).where(schema.tasks.c.task_id == task_id))
        return Task.from_dict(_as_dict(found)) if found is not None else None

    def tasks_of_incident(self, incident_id: str) -> list[Task]:
        tasks = schema.tasks.c
        query = select(tasks.record).where(tasks.incident_id == incident_id).order_by(tasks.assigned_at)
        return self._records(query, Task)

    def current_task(self, incident_id: str, incident: Optional[Incident] = None) -> Optional[Task]:
        incident = incident or self.incident(incident_id)
        if incident is not None and incident.task_id and (task := self.task(incident.task_id)) is not None:
            return task
        tasks = self.tasks_of_incident(incident_id)
        return tasks[-1] if tasks else None

    def tasks_of_officer(self, officer_id: str) -> list[Task]:
        """The officer's open tasks and their latest finished ones."""
        tasks = schema.tasks.c
        mine = select(tasks.record).where(tasks.officer_id == officer_id)
        open_tasks = self._records(mine.where(tasks.status.in_(OPEN_TASK_STATUSES)), Task)
        done = mine.where(tasks.status.not_in(OPEN_TASK_STATUSES)).order_by(tasks.assigned_at.desc())
        return open_tasks + self._records(done.limit(DONE_TASKS_SHOWN), Task)

    def officer_may_see(self, officer_id: str, incident_id: str) -> bool:
        tasks = schema.tasks.c
        query = select(tasks.task_id).where(tasks.incident_id == incident_id, tasks.officer_id == officer_id)
        return self._scalar(query.limit(1)) is not None

    # ------------------------------------------------------------ feedback outcomes
    def outcome(self, *keys: str) -> Optional[Verdict]:
        """The processor's verdict on one feedback, by its id or its position on the feedback topic: the first
        refusal if any step was refused, else the first applied step."""
        wanted = [key for key in keys if key]
        if not wanted:
            return None
        rows = schema.outcomes.c
        query = select(rows.applied, rows.reason, rows.action, rows.incident_id, rows.to_state) \
            .where(rows.lookup_key.in_(wanted)).order_by(rows.applied, rows.id).limit(1)
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return Verdict(bool(row.applied), row.reason, row.action, row.incident_id, row.to_state) if row else None

    # ------------------------------------------------------------ cameras and alerts
    def cameras(self) -> dict[str, CameraStatus]:
        return {status.camera_id: status for status in self._records(select(schema.cameras.c.record), CameraStatus)}

    def recent_alerts(self, limit: int) -> list[Alert]:
        """The latest alerts, newest first."""
        query = select(schema.alerts.c.record).order_by(schema.alerts.c.at.desc()).limit(limit)
        return self._records(query, Alert)

    # ------------------------------------------------------------ uploads and revoked sessions
    def add_upload(self, sha256: str, person_id: str, at: datetime) -> None:
        with self.engine.begin() as connection:
            exists = connection.execute(select(schema.uploads.c.sha256).where(
                schema.uploads.c.sha256 == sha256, schema.uploads.c.person_id == person_id)).first()
            if exists is None:
                connection.execute(schema.uploads.insert().values(sha256=sha256, person_id=person_id, at=at))

    def uploaded_by(self, person_id: str, sha256: str) -> bool:
        uploads = schema.uploads.c
        return self._scalar(select(uploads.sha256).where(uploads.sha256 == sha256,
                                                         uploads.person_id == person_id)) is not None

    def revoke(self, token: str, expires_at: datetime) -> None:
        digest = token_hash(token)
        with self.engine.begin() as connection:
            connection.execute(schema.revocations.delete().where(schema.revocations.c.expires_at < datetime.utcnow()))
            if connection.execute(select(schema.revocations.c.token_hash)
                                  .where(schema.revocations.c.token_hash == digest)).first() is None:
                connection.execute(schema.revocations.insert().values(token_hash=digest, expires_at=expires_at))

    def is_revoked(self, token: str) -> bool:
        revoked = schema.revocations.c
        return self._scalar(select(revoked.token_hash).where(revoked.token_hash == token_hash(token))) is not None

    # ------------------------------------------------------------ case facts and filed cases
    def facts(self, incident_id: str) -> Optional[CaseFacts]:
        rows = self._facts(select(*_FACT_COLUMNS).where(schema.cases.c.incident_id == incident_id))
        return rows[0] if rows else None

    def filed_cases(self, wanted: FiledCases) -> list[CaseFacts]:
        """The cases the filters keep, with their facts, newest filing first (then by id: a stable paging order)."""
        cases = schema.cases.c
        query = select(*_FACT_COLUMNS).where(*_filed_conditions(wanted))
        query = query.order_by(cases.first_seen.desc(), cases.incident_id).offset(wanted.offset).limit(wanted.limit)
        return self._facts(query)

    # ------------------------------------------------------------ the access log
    def log_access(self, person_id: str, role: str, what: str, target: str, incident_id: Optional[str] = None,
                   reason: str = "", at: Optional[datetime] = None) -> None:
        """Record that ``person_id`` (as ``role``) looked at ``target``: ``what`` says what it is (``export``: a
        case export, target the incident id; ``evidence``: a file, target its sha256)."""
        row = {"at": at or datetime.utcnow(), "person_id": person_id, "role": role, "what": what,
               "target": target, "incident_id": incident_id, "reason": reason}
        with self.engine.begin() as connection:
            connection.execute(schema.access_log.insert().values(**row))

    def accesses(self, target: Optional[str] = None, incident_id: Optional[str] = None, what: Optional[str] = None,
                 limit: int = 1000) -> list[Access]:
        """Access log rows matching every filter given, newest first."""
        log = schema.access_log.c
        wanted = [(log.target, target), (log.incident_id, incident_id), (log.what, what)]
        query = select(log.at, log.person_id, log.role, log.what, log.target, log.incident_id, log.reason)
        query = query.where(*[column == value for column, value in wanted if value is not None])
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(log.at.desc(), log.id.desc()).limit(limit))
            return [Access(**row._asdict()) for row in rows]

    def log_evidence_view(self, person_id: str, role: str, sha256: str, incident_ids: Iterable[str],
                          reason: str = "", at: Optional[datetime] = None) -> None:
        """Record one view of an evidence file: a row for each case it belongs to (one without a case for an
        upload not attached yet), all at the same moment, so the log can be searched by case."""
        at = at or datetime.utcnow()
        rows = [{"at": at, "person_id": person_id, "role": role, "what": "evidence", "target": sha256,
                 "incident_id": incident_id, "reason": reason} for incident_id in sorted(incident_ids) or [None]]
        with self.engine.begin() as connection:
            connection.execute(schema.access_log.insert(), rows)

    def search_accesses(self, search: AccessSearch) -> AccessPage:
        """One page of the access log rows the filters keep, newest first, and how many there are in all."""
        log = schema.access_log.c
        wanted = [(log.person_id, search.person_id), (log.role, search.role), (log.incident_id, search.incident_id),
                  (log.what, "evidence" if search.sha256 else search.what), (log.target, search.sha256)]
        conditions = [column == value for column, value in wanted if value is not None]
        conditions += [log.at >= search.since] if search.since else []
        conditions += [log.at < search.until] if search.until else []
        query = select(log.at, log.person_id, log.role, log.what, log.target, log.incident_id, log.reason)
        query = query.where(*conditions).order_by(log.at.desc(), log.id.desc())
        query = query.offset((search.page - 1) * search.per_page).limit(search.per_page)
        with self.engine.connect() as connection:
            rows = [Access(**row._asdict()) for row in connection.execute(query)]
            total = connection.execute(select(func.count()).select_from(schema.access_log).where(*conditions)).scalar()
        return AccessPage(rows, int(total or 0), search.page, search.per_page)

    # ------------------------------------------------------------ helpers
    def _facts(self, query: Any) -> list[CaseFacts]:
        with self.engine.connect() as connection:
            return [CaseFacts(Incident.from_dict(_as_dict(row.record)), row.dispatched_at, row.deadline_at,
                              row.closed_at, row.minutes_to_close, bool(row.rejected), bool(row.reworked))
                    for row in connection.execute(query)]

    def _scalar(self, query: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(query).scalar()

    def _records(self, query: Any, record_type: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return [record_type.from_dict(_as_dict(row[0])) for row in connection.execute(query)]


def _search_conditions(search: CaseSearch) -> list[Any]:
    cases = schema.cases.c
    wanted: Iterable[tuple[Any, Any]] = (
        (cases.incident_id, search.incident_id), (cases.camera_id, search.camera_id),
        (cases.grid_id, search.grid_id), (cases.scenario, search.scenario),
        (cases.state, search.state.upper() if search.state else None),
        (cases.plate_key, plate_key(search.plate) if search.plate else None))
    conditions = [column == value for column, value in wanted if value]
    if search.day_from:
        conditions.append(cases.filed_day >= search.day_from.isoformat())
    if search.day_to:
        conditions.append(cases.filed_day <= search.day_to.isoformat())
    return [and_(*conditions)] if conditions else []


_FACT_COLUMNS = tuple(schema.cases.c[name] for name in (
    "record", "dispatched_at", "deadline_at", "closed_at", "minutes_to_close", "rejected", "reworked"))


def _filed_conditions(wanted: FiledCases) -> list[Any]:
    cases = schema.cases.c
    conditions: list[Any] = [cases.state.not_in(sorted(UNFILED_STATES))]  # an alarm under review is no case yet
    if wanted.incident_ids:
        conditions.append(cases.incident_id.in_(wanted.incident_ids))
    if wanted.scenarios:
        conditions.append(cases.scenario.in_(wanted.scenarios))
    if wanted.closed is not None:
        finished = cases.state.in_(sorted(TERMINAL_STATES))
        conditions.append(finished if wanted.closed else ~finished)
    if wanted.filed_from is not None:
        conditions.append(cases.first_seen >= wanted.filed_from)
    if wanted.filed_to is not None:
        conditions.append(cases.first_seen <= wanted.filed_to)
    return conditions


def _as_dict(value: Any) -> dict:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def hours_ago(hours: float) -> datetime:
    """A naive UTC moment ``hours`` before now, as the tables hold times."""
    return datetime.utcnow() - timedelta(hours=hours)
