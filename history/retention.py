"""Retention of evidence files: which files the purge deletes, deleting them, and what was purged.

A case is purgeable when it ended (``CLOSED``, ``VERIFIED``, ``SELF_CORRECTED`` or ``REJECTED``) before the
cut-off (its closing time, else its last update) and has no legal hold in force (:mod:`history.custody`).
Its files are every file linked to it in ``evidence`` (the pictures, the officers' photos) and the masked
copies its snapshot lists for them.  A file that a case which is not purgeable also uses is kept.

:func:`purge_case` records first (``purged_files`` rows and an ``evidence_purged`` step listing the sha256s,
one transaction), then deletes the files and marks them deleted; a run stopped in between leaves rows
without ``deleted_at``, which :func:`finish_deletions` completes at the next run.  The hashes stay in
``evidence`` and in the records: only the bytes go.

Example::

    >>> from history.database import open_database
    >>> engine = open_database(":memory:")
    >>> list(purge_plan(engine, EvidenceStore(Path("/nowhere")), cutoff=datetime(2026, 1, 1)))
    []
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from sqlalchemy import Connection, Engine, exists, func, or_, select, update

from contract import CaseEvent
from history import schema
from history.custody import EVIDENCE_PURGED, record_step
from history.facts import TERMINAL_STATES
from nonsite.evidence import SHA256, EvidenceStore

ACTOR = "retention"  # the actor of the purge steps in the audit log
PAGE = 500  # cases read per query


@dataclass(frozen=True)
class PurgedFile:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class CasePurge:
    """What a purge deletes of one case: ``files``; ``kept`` the sha256 of its files another case still needs."""

    incident_id: str
    state: str
    ended_at: datetime  # naive UTC: the closing time, or the last update of a rejected case
    files: tuple[PurgedFile, ...]
    kept: tuple[str, ...] = ()

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)


def purge_plan(engine: Engine, store: EvidenceStore, cutoff: datetime,
               run_at: Optional[datetime] = None) -> Iterator[CasePurge]:
    """The purgeable cases (by id) that still have files to delete, read page by page.

    ``run_at`` is the moment of the run that purges as it reads: a file it purged for an earlier case is
    still listed for a later case that shares it, so that case's audit log says so too."""
    run_at = run_at or datetime.utcnow()
    after = ""
    while True:
        with engine.connect() as connection:
            page = connection.execute(_candidates(cutoff, run_at, after)).all()
            if not page:
                return
            links = _links(connection, [row.incident_id for row in page], run_at)
            blocked = _still_needed(connection, {sha for shas in links.values() for sha in shas}, cutoff)
            purged_now = _purged_in_run(connection, {sha for shas in links.values() for sha in shas}, run_at)
        # every plan of the page made before the caller purges any: a file two of them share is listed in both
        plans = [_plan(row, links.get(row.incident_id, set()), blocked, purged_now, store) for row in page]
        yield from (plan for plan in plans if plan.files)
        after = page[-1].incident_id


def purge_case(engine: Engine, store: EvidenceStore, plan: CasePurge, retention_days: int,
               at: Optional[datetime] = None) -> Optional[CaseEvent]:
    """Record the purge of the plan's files (rows and the case's ``evidence_purged`` step), then delete them.

    None when the case went on legal hold since the plan was made: nothing is done."""
    at = at or datetime.utcnow()
    shas = [f.sha256 for f in plan.files]
    with engine.begin() as connection:
        if connection.execute(select(_held(schema.holds.c.incident_id == plan.incident_id))).scalar():
            return None
        known = set(connection.execute(select(schema.purged_files.c.sha256)
                                       .where(schema.purged_files.c.sha256.in_(shas))).scalars())
        rows = [{"sha256": f.sha256, "purged_at": at, "bytes": f.bytes, "deleted_at": None}
                for f in plan.files if f.sha256 not in known]
        if rows:
            connection.execute(schema.purged_files.insert(), rows)
        event = record_step(connection, plan.incident_id, EVIDENCE_PURGED, ACTOR, _reason(plan, retention_days), at,
                            evidence=shas)
    _delete(engine, store, shas)
    return event


def finish_deletions(engine: Engine, store: EvidenceStore) -> int:
    """Delete the files recorded as purged whose deletion a stopped run left undone; how many there were."""
    files = schema.purged_files.c
    with engine.connect() as connection:
        pending = list(connection.execute(select(files.sha256).where(files.deleted_at.is_(None))).scalars())
    if pending:
        _delete(engine, store, pending)
    return len(pending)


def purged_at(engine: Engine, shas: Iterable[str]) -> dict[str, datetime]:
    """sha256 -> when the retention purge deleted that file (naive UTC), for the given files that it did."""
    wanted = sorted(set(shas))
    if not wanted:
        return {}
    files = schema.purged_files.c
    with engine.connect() as connection:
        return dict(connection.execute(select(files.sha256, files.purged_at).where(files.sha256.in_(wanted))).all())


# ------------------------------------------------------------------ the selection, in SQL
def _ended(cases: Any) -> Any:
    return func.coalesce(cases.closed_at, cases.updated_at)


def _held(incident_id_matches: Any) -> Any:
    holds = schema.holds.c
    return exists(select(holds.id).where(incident_id_matches, holds.released_at.is_(None)))


def _purgeable(cases: Any, cutoff: datetime) -> Any:
    return (cases.state.in_(sorted(TERMINAL_STATES))) & (_ended(cases) < cutoff) & \
        ~_held(schema.holds.c.incident_id == cases.incident_id)


def _not_purged_before(sha256: Any, run_at: datetime) -> Any:
    files = schema.purged_files.c
    return ~exists(select(files.sha256).where(files.sha256 == sha256, files.purged_at < run_at))


def _candidates(cutoff: datetime, run_at: datetime, after: str) -> Any:
    cases, links = schema.cases.c, schema.evidence.c
    has_files = exists(select(links.sha256).where(links.incident_id == cases.incident_id,
                                                  _not_purged_before(links.sha256, run_at)))
    return select(cases.incident_id, cases.state, _ended(cases).label("ended_at"), cases.record) \
        .where(_purgeable(cases, cutoff), has_files, cases.incident_id > after) \
        .order_by(cases.incident_id).limit(PAGE)


def _links(connection: Connection, incident_ids: list[str], run_at: datetime) -> dict[str, set[str]]:
    links = schema.evidence.c
    found: dict[str, set[str]] = {}
    for row in connection.execute(select(links.incident_id, links.sha256).where(
            links.incident_id.in_(incident_ids), _not_purged_before(links.sha256, run_at))):
        found.setdefault(row.incident_id, set()).add(row.sha256)
    return found


def _still_needed(connection: Connection, shas: set[str], cutoff: datetime) -> set[str]:
    """The files also linked to a case that is not purgeable, or to a case the database does not hold."""
    if not shas:
        return set()
    links, cases = schema.evidence.alias("other_links"), schema.cases.alias("other_cases")
    query = select(links.c.sha256).select_from(links.outerjoin(cases, cases.c.incident_id == links.c.incident_id)) \
        .where(links.c.sha256.in_(sorted(shas)), or_(cases.c.incident_id.is_(None), ~_purgeable(cases.c, cutoff)))
    return set(connection.execute(query).scalars())


def _purged_in_run(connection: Connection, shas: set[str], run_at: datetime) -> dict[str, int]:
    files = schema.purged_files.c
    if not shas:
        return {}
    return dict(connection.execute(select(files.sha256, files.bytes)
                                   .where(files.sha256.in_(sorted(shas)), files.purged_at == run_at)).all())


def _plan(row: Any, shas: set[str], blocked: set[str], purged_now: dict[str, int],
          store: EvidenceStore) -> CasePurge:
    masked = _masked_copies(row.record)
    deleted = sorted(shas - blocked)
    chosen = deleted + sorted({copy for sha in deleted for copy in masked.get(sha, ())} - shas)
    files = []
    for sha in chosen:
        path = store.locate(sha)
        if path is not None:
            files.append(PurgedFile(sha, path.stat().st_size))
        elif sha in purged_now:  # deleted moments ago for another case of this run
            files.append(PurgedFile(sha, purged_now[sha]))
    return CasePurge(row.incident_id, row.state, row.ended_at, tuple(files), tuple(sorted(shas & blocked)))


def _masked_copies(record: Any) -> dict[str, list[str]]:
    """sha256 of a picture -> the sha256 of its masked copies, as the case snapshot lists them (``masked``)."""
    snapshot = json.loads(record) if isinstance(record, (str, bytes)) else record
    copies: dict[str, list[str]] = {}
    for item in (snapshot or {}).get("evidence") or ():
        masked = item.get("masked") if isinstance(item, dict) else None
        if isinstance(masked, dict):
            copies[item.get("sha256", "")] = [sha for sha in masked.values()
                                              if isinstance(sha, str) and SHA256.match(sha)]
    return copies


def _delete(engine: Engine, store: EvidenceStore, shas: list[str]) -> None:
    for sha in shas:
        path = store.locate(sha)
        if path is not None:
            Path(path).unlink(missing_ok=True)
    files = schema.purged_files.c
    with engine.begin() as connection:
        connection.execute(update(schema.purged_files).where(files.sha256.in_(shas), files.deleted_at.is_(None))
                           .values(deleted_at=datetime.utcnow()))


def _reason(plan: CasePurge, retention_days: int) -> str:
    reason = (f"evidence deleted under the retention rule (history.evidence_retention_days = {retention_days}): "
              f"{len(plan.files)} file(s), {plan.bytes} bytes; the case ended {plan.ended_at:%Y-%m-%d %H:%M} UTC")
    if plan.kept:
        reason += f"; {len(plan.kept)} file(s) kept, still used by another case"
    return reason
