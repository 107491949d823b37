"""Stage two, pure: the case engine of one district — dedup, dispatch, disposal, verification, stats.

The engine reads and writes plain JSON values in named tables (Faust tables in the worker, dicts in
unit tests) and returns what to publish.  It is deterministic: its clock is the time carried by each
input (a detection's ``observed_at``, a feedback's ``at``, a tick's ``now``) and every id it makes
is derived from the input, so a message processed twice after a crash re-creates the same ids.
Inputs already applied (source offset at or below the one recorded for that source partition and
district) are skipped; the marker is written after everything else of the input.

Example::

    >>> from nonsite.config import load_city
    >>> engine = Engine(load_city("configs"), Tables.in_memory())   # doctest: +SKIP
    >>> engine.handle(envelope).incidents                           # doctest: +SKIP
"""
from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Callable, Mapping, MutableMapping, Optional, Sequence

from contract import (Alert, CameraStatus, CaseEvent, DeadLetter, Detection, Feedback, Incident,
                            Task)
from contract import to_epoch as _to_epoch, to_iso as _to_iso
from contract.deadletter import dead_letter, failure_reason
from nonsite.config import City
from stream import casefile, codec
from stream.casefile import (ACCEPTED, ARRIVED, CLOSED, DETECTED, DISPATCHED, ESCALATED, REJECTED, REOPENED,
                             RESOLVED, SELF_CORRECTED, VERIFIED, CaseFile)
from stream.dedup import CityMap, SiteCase, match_detection, site_key, spot
from stream.dispatch import accept_by, choose_officer, deadline_of, on_duty_officers, task_id_for
from stream.intake import Envelope, Fields
from stream.journal import Journal, View
from stream.offences import offender_keys, prior_offences, record_offence
from stream.stats import bump, stats_key
from stream.verify import REOPEN, SELF_CORRECT, VERIFY, Presence, observe_camera, observe_detection, verdict

# pure conversions the engine repeats for every input (a batch sees the same moments again and again)
to_iso = functools.lru_cache(maxsize=1 << 16)(_to_iso)
to_epoch = functools.lru_cache(maxsize=1 << 16)(_to_epoch)


def epoch_of_new(text: str) -> float:
    """``to_epoch`` for a timestamp seen once (a detection's ``observed_at``): no memo to miss."""
    if text[-1] == "Z":
        return datetime.fromisoformat(text).timestamp()
    return _to_epoch(text)


CANONICAL_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def later_iso(a: str, b: str) -> str:
    """The later of two timestamps; canonical ones (``…:SS.mmmZ``) compare as text."""
    if len(a) == len(b) == 24 and a[-1] == b[-1] == "Z":
        return a if a >= b else b
    return a if to_epoch(a) >= to_epoch(b) else b


def iso_of(text: str, epoch: float) -> str:
    """``to_iso(epoch)`` where ``text`` is the same moment: ``text`` itself when it is already in that form
    (every detection's timestamps are, and each is new, so the memo above would only miss)."""
    return text if CANONICAL_ISO.fullmatch(text) else to_iso(epoch)


FEEDBACK_STATES = {"accept": ACCEPTED, "arrive": ARRIVED, "resolve": RESOLVED, "reject": REJECTED,
                   "reassign": DISPATCHED}
STATE_COUNTERS = {REOPENED: "reopened", REJECTED: "rejected_false_alarm", SELF_CORRECTED: "self_corrected",
                  ESCALATED: "escalated"}
SYSTEM, CAMERA, TIMER = "system", "camera", "timer"
INCIDENT_DEFAULTS = {name: Incident.defaults().get(name) for name in Incident.field_names()}


@dataclass
class Tables:
    """The engine's state, one view per thing it holds (all values plain JSON), in one journal table."""

    cases: View  # incident id -> case (incident, case file, presence, task)
    open_cases: View  # district -> ids of open cases
    site_cases: View  # scenario|camera|zone -> id of the last case filed there
    violation_cases: View  # detector violation id -> incident id
    officer_open_tasks: View  # officer id -> number of open tasks
    grid_last_assigned: View  # grid id -> officer who got the last task (round robin)
    grid_queues: View  # grid id -> ids of cases waiting for an officer
    offence_history: View  # site:/plate:/shop: key -> [[epoch, incident id]]
    daily_stats: View  # day|scenario|grid|officer|camera -> counters
    camera_states: View  # camera id -> online | offline
    retired_cases: View  # district|hour (UTC, 2026-11-21T08) -> ids of cases closed or rejected then
    retired_hours: View  # district -> the hours of retired_cases, oldest first
    source_offsets: View  # district|topic:partition -> last applied offset; district|clock -> last tick
    journal: Journal = field(repr=False, default=None)  # type: ignore[assignment]

    @classmethod
    def over(cls, store: MutableMapping[str, Any], reader: Optional[Mapping[str, Any]] = None) -> "Tables":
        """Views over one mapping: a Faust table in the worker, a dict in unit tests (``reader``: see Journal)."""
        journal = Journal(store, reader)
        return cls(**{name: View(journal, name) for name in cls.names()}, journal=journal)

    @classmethod
    def in_memory(cls) -> "Tables":
        return cls.over({})

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "journal"]


@dataclass
class Outputs:
    """What to publish for one input, or for the inputs of one cases-topic message (a batch).

    ``incidents`` holds the latest snapshot per incident.  Repeats of one incident within a batch
    share a snapshot; a snapshot showing a state (state, officer, task, reopen count) that a later
    input of the batch moved on from is kept in ``earlier`` and published first, so every state
    change has its snapshot.
    Snapshots are built when asked for: a batch saves a case many times and publishes it once.
    """

    tasks: list[Task] = field(default_factory=list)
    case_events: list[CaseEvent] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    earlier: list[Fields] = field(default_factory=list)  # superseded state snapshots of this batch, in order
    skipped: int = 0  # inputs skipped as already applied
    resent: int = 0  # detections not newer than one already applied for their violation: nothing counted
    dropped_ends: dict[str, int] = field(default_factory=dict)  # why -> ``end`` detections no open case took
    inputs: int = 0  # inputs seen so far (snapshot boundaries)
    _latest: dict[str, tuple["Case", int]] = field(default_factory=dict, repr=False)  # id -> (case, input)

    def snapshot(self, case: "Case") -> None:
        """Publish ``case`` as it is now (it must not change afterwards: the engine saves, then copies)."""
        pending = self._latest.get(case.id)
        if pending is not None and pending[1] != self.inputs and _shown_state(pending[0]) != _shown_state(case):
            self.earlier.append(snapshot_of(pending[0]))
        self._latest[case.id] = (case, self.inputs)

    @property
    def snapshot_count(self) -> int:
        return len(self._latest) + len(self.earlier)

    @property
    def incidents(self) -> dict[str, Fields]:
        """The latest snapshot per incident."""
        return {incident_id: snapshot_of(case) for incident_id, (case, _) in self._latest.items()}

    def snapshots(self) -> list[Fields]:
        """Every snapshot to publish, oldest first."""
        return self.earlier + list(self.incidents.values())


def _shown_state(case: "Case") -> tuple:
    """What a published snapshot must not skip."""
    return case.file.state, case.file.officer_id, case.file.task_id, case.file.reopen_count


def snapshot_of(case: "Case") -> Fields:
    """The Incident record (all its fields, JSON-ready) as published on the incidents topic."""
    return Fields({**INCIDENT_DEFAULTS, **case.incident, "state": case.file.state,
                   "officer_id": case.file.officer_id, "task_id": case.file.task_id,
                   "deadline": to_iso(case.deadline), "reopen_count": case.file.reopen_count})


@dataclass
class Case:
    """Everything the engine keeps about one case (stored as a dict in ``cases``)."""

    incident: dict[str, Any]
    file: CaseFile
    presence: Presence
    district: str
    filed_at: float
    deadline: float
    best_confidence: float = 0.0
    attempt: int = 0
    accept_by: Optional[float] = None
    resolved_at: Optional[float] = None
    task: Optional[dict[str, Any]] = None
    offender_keys: list[str] = field(default_factory=list)
    queued: bool = False
    # violation id -> [epoch of its newest detection applied, event ids applied at that moment]
    marks: dict[str, list] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.file.incident_id

    def copy(self) -> "Case":
        """As independent as ``from_dict(to_dict())``: file and presence are immutable, lists are replaced."""
        return Case(incident=dict(self.incident), file=self.file, presence=self.presence, district=self.district,
                    filed_at=self.filed_at, deadline=self.deadline, best_confidence=self.best_confidence,
                    attempt=self.attempt, accept_by=self.accept_by, resolved_at=self.resolved_at, task=self.task,
                    offender_keys=self.offender_keys, queued=self.queued, marks=self.marks)

    def to_dict(self) -> dict[str, Any]:
        return {"incident": self.incident, "file": self.file.to_dict(), "presence": self.presence.to_dict(),
                "district": self.district, "filed_at": self.filed_at, "deadline": self.deadline,
                "best_confidence": self.best_confidence, "attempt": self.attempt, "accept_by": self.accept_by,
                "resolved_at": self.resolved_at, "task": self.task, "offender_keys": self.offender_keys,
                "queued": self.queued, "marks": self.marks}

    def is_resend(self, d: Detection, at: float) -> bool:
        """Whether ``d`` (observed at ``at``) is not newer than what this case applied of its violation:
        the same event sent again, or an older one arriving late.  Either changes no count."""
        mark = self.marks.get(d.violation_id)
        return mark is not None and (at < mark[0] or (at == mark[0] and d.event_id in mark[1]))

    def mark(self, d: Detection, at: float) -> None:
        mark = self.marks.get(d.violation_id)
        ids = mark[1] + [d.event_id] if mark is not None and at == mark[0] else [d.event_id]
        self.marks = {**self.marks, d.violation_id: [at, ids]}  # replaced, never changed in place (copies share it)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Case":
        values = dict(data)
        values["incident"] = dict(data["incident"])  # the engine edits it; lists in it are replaced, not mutated
        values["file"] = CaseFile.from_dict(data["file"])
        values["presence"] = Presence.from_dict(data["presence"])
        return cls(**values)


class InputFailed(Exception):
    """Applying input ``index`` of a unit raised ``cause``."""

    def __init__(self, index: int, cause: BaseException):
        super().__init__(f"input {index}: {failure_reason(cause)}")
        self.index, self.cause = index, cause


def input_dead_letter(env: Envelope, reason: str, at: tuple[int, int], cases_topic: str) -> DeadLetter:
    """The dead letter of an input the engine could not apply: where it came from, or its cases message."""
    if env.kind == "tick":
        topic, partition, offset = cases_topic, at[0], at[1]
    else:
        topic, partition_text = env.stream.rsplit(":", 1)
        partition, offset = int(partition_text), env.offset
    payload = env.payload.to_json() if hasattr(env.payload, "to_json") else codec.encode(env.payload)
    return dead_letter(topic, partition, offset, f"case engine: {reason}", payload)


def incident_id_for(district: str, detection_event_id: str) -> str:
    """From the detection that opened the case: the same input always yields the same incident id."""
    return f"{district}.{hashlib.sha1(detection_event_id.encode()).hexdigest()[:16]}"


class Engine:
    def __init__(self, city: City, tables: Tables, city_map: Optional[CityMap] = None):
        self.city, self.tables = city, tables
        self.map = city_map or CityMap.build(city)
        self.settings = city.stream
        self.timezone = city.system.city.timezone
        # cases saved in the current unit, written to ``cases`` once at its end: a batch repeating one
        # incident converts it from and to its stored form once, not per input
        self._saved: dict[str, Case] = {}

    # ------------------------------------------------------------------ entry point
    def position(self, partition: int) -> Optional[int]:
        """The offset of the last cases-topic message applied from ``partition`` (kept with the state)."""
        return self.tables.journal.latest(f"{self.tables.source_offsets.prefix}@cases|{partition}")

    def handle(self, env: Envelope, commit: bool = True, at: Optional[tuple[int, int]] = None) -> Outputs:
        """Apply one input (exactly once in effect: see :mod:`stream.journal`) and return what to publish.

        With ``commit=False`` the state writes stay buffered until :meth:`commit`: the worker publishes
        the outputs first, so that state never reaches the changelog ahead of what it announced.
        ``at`` is the (partition, offset) of the message in the cases topic, recorded with the state.
        """
        out = self._handle(env)
        if at is not None:
            if self.tables.journal.input_id is None:  # skipped input: record only the position
                self.tables.journal.begin(f"@cases|{at[0]}|{at[1]}")
            self.tables.source_offsets[f"@cases|{at[0]}"] = at[1]
        if commit:
            self.tables.journal.commit()
        return out

    def handle_batch(self, envs: Sequence[Envelope], at: tuple[int, int], commit: bool = True) -> Outputs:
        """Apply the inputs of the cases-topic message at ``at`` = (partition, offset) as one unit.

        The journal unit is the message (``@cases|partition|offset``): its writes are buffered and sent
        together, each key once, the message's position last.  Redone after a crash, the message holds
        the same inputs and starts from the same state (keys it stamped read as ``value_before``), so it
        recomputes the same writes and outputs.  Inputs already applied by an earlier message (intake
        forwards again what it read before a crash) are skipped by their source markers.
        """
        journal = self.tables.journal
        journal.begin(f"@cases|{at[0]}|{at[1]}")
        out = Outputs()
        positions: dict[str, Any] = {}  # source markers of this unit, written once at its end
        try:
            for index, env in enumerate(envs):
                try:
                    self._apply(env, out, journal.read, positions=positions)
                except Exception as exc:
                    raise InputFailed(index, exc) from exc
                out.inputs += 1
            self._write_saved()
            for key, position in positions.items():
                journal.write(key, position)
        except Exception:
            self._abort()
            raise
        journal.write_last(f"{self.tables.source_offsets.prefix}@cases|{at[0]}", at[1])
        if commit:
            journal.commit()
        return out

    def handle_batch_isolated(self, envs: Sequence[Envelope], at: tuple[int, int], cases_topic: str,
                              commit: bool = True) -> Outputs:
        """:meth:`handle_batch`, where an input whose handling raises is dead-lettered, not fatal.

        The unit is aborted and applied again without that input (the engine is deterministic, so the
        others give the same result), until it applies; each input taken out becomes a dead letter with
        the exception's class and text.  Should the unit fail outside any input, every input is
        dead-lettered and only the message's position is recorded, so it is never met again.
        """
        remaining, failed = list(envs), []
        while True:
            try:
                out = self.handle_batch(remaining, at, commit=commit)
                break
            except InputFailed as failure:
                failed.append((remaining.pop(failure.index), failure_reason(failure.cause)))
            except Exception as exc:  # noqa: BLE001  (message content must never stop the worker)
                failed += [(env, failure_reason(exc)) for env in remaining]
                out = self.handle_batch([], at, commit=commit)
                break
        out.dead_letters += [input_dead_letter(env, reason, at, cases_topic) for env, reason in failed]
        return out

    def _handle(self, env: Envelope) -> Outputs:
        journal = self.tables.journal
        if env.kind == "tick":
            journal.begin(f"{env.district}|tick|{env.payload['now']}")
        else:
            journal.begin(f"{env.district}|{env.stream}|{env.offset}")
        out = Outputs()
        try:
            if not self._apply(env, out, journal.latest):
                self._abort()
        except Exception:
            self._abort()
            raise
        return out

    def _abort(self) -> None:
        self._saved.clear()
        self.tables.journal.abort()

    def _write_saved(self) -> None:
        for incident_id, case in self._saved.items():
            self.tables.cases[incident_id] = case.to_dict()
        self._saved.clear()

    def _apply(self, env: Envelope, out: Outputs, marker_of: Callable[[str], Any],
               positions: Optional[dict[str, Any]] = None) -> bool:
        """Apply one input unless its source marker (read with ``marker_of``) says it was applied.

        ``positions``: a batch's markers so far, which the batch writes once at its end; without it
        the input is its own unit and its marker is written last.
        """
        if env.kind == "tick":
            marker, position = f"{env.district}|clock", to_epoch(env.payload["now"])
        else:
            marker, position = f"{env.district}|{env.stream}", env.offset
        key = self.tables.source_offsets.prefix + marker
        last = positions[key] if positions is not None and key in positions else marker_of(key)
        if last is not None and position <= last:
            out.skipped += 1
            return False
        if env.kind == "tick":
            self._on_tick(env, position, out)
        elif env.kind == "detections":
            self._on_detection(env, env.payload, out)
        elif env.kind == "camera_status":
            self._on_camera_status(env, env.payload, out)
        elif env.kind == "feedback":
            self._on_feedback(env, env.payload, out)
        if positions is not None:
            positions[key] = position
            return True
        self._write_saved()
        self.tables.source_offsets[marker] = position  # the marker is written last (with the position)
        return True

    def commit(self) -> None:
        self.tables.journal.commit()

    # ------------------------------------------------------------------ state access
    def load(self, incident_id: Optional[str]) -> Optional[Case]:
        """A copy of the case: changes count once :meth:`save` d."""
        if not incident_id:
            return None
        saved = self._saved.get(incident_id)
        if saved is not None:
            return saved.copy()
        data = self.tables.cases.get(incident_id)
        return Case.from_dict(data) if data else None

    def save(self, case: Case, out: Outputs) -> None:
        """Keep ``case`` as the unit's latest version; the caller must not change it afterwards
        (:meth:`load` hands out copies)."""
        self._saved[case.id] = case
        out.snapshot(case)

    def _site_case(self, key: str) -> Optional[SiteCase]:
        case = self.load(self.tables.site_cases.get(key))
        if case is None:
            return None
        return SiteCase(case.id, case.incident["scenario"], case.file.is_open, case.file.state,
                        to_epoch(case.incident["last_seen"]), case.file.state == CLOSED)

    def _open_ids(self, district: str) -> list[str]:
        return list(self.tables.open_cases.get(district) or [])

    # ------------------------------------------------------------------ case steps
    def _step(self, case: Case, to_state: str, action: str, actor: str, now: float, source: str, out: Outputs,
              reason: str = "", evidence: tuple[str, ...] = (), task_id: Optional[str] = None,
              officer_id: Optional[str] = None) -> bool:
        before = case.file
        case.file, event = casefile.transition(case.file, to_state, action, actor=actor, at=to_iso(now),
                                               reason=reason, evidence=evidence, task_id=task_id,
                                               officer_id=officer_id, source=source)
        out.case_events.append(event)
        if not event.applied:
            self._alert(out, "refused", "warning", now, f"{case.id}: {event.reason}", case, suffix=str(event.seq))
            return False
        counter = STATE_COUNTERS.get(to_state)
        if counter and not (to_state == REOPENED and case.file.reopen_count > 1):  # rework counts cases, once
            self._count(case, now, counter)
        if to_state == ESCALATED:
            self._alert(out, "escalated", "critical", now, f"{case.id} passed its deadline {to_iso(case.deadline)}"
                        f" in state {before.state}", case, suffix=str(event.seq))
        elif to_state == REOPENED:
            self._alert(out, "reopened", "warning", now, f"{case.id}: {reason}", case, suffix=str(event.seq))
        if to_state in (CLOSED, REJECTED):
            self._finish(case, now, to_state, out)
        return True

    def _refuse(self, case: Case, to_state: str, action: str, actor: str, now: float, source: str, reason: str,
                out: Outputs, evidence: tuple[str, ...] = ()) -> None:
        case.file, event = casefile.refuse(case.file, to_state, action, reason, actor=actor, at=to_iso(now),
                                           evidence=evidence, source=source)
        out.case_events.append(event)
        self._alert(out, "refused", "warning", now, f"{case.id}: {reason}", case, suffix=str(event.seq))

    def _finish(self, case: Case, now: float, to_state: str, out: Outputs) -> None:
        """Closed or rejected: free the officer, retire the task, drop the case from the open set."""
        self._end_task(case, "done", now, out)
        ids = self._open_ids(case.district)
        if case.id in ids:
            ids.remove(case.id)
            self.tables.open_cases[case.district] = ids
        self._unqueue(case)
        if to_state == CLOSED:
            minutes = (now - case.filed_at) / 60.0
            self._count(case, now, "closed")
            self._count(case, now, "minutes_to_close", minutes)
            if now <= case.deadline:
                self._count(case, now, "closed_on_time")
        # its violation ids stay mapped to it until it leaves the state (:meth:`_forget`): a detection
        # sent again later is then known as such, and a new one opens a new case (:meth:`_on_detection`)
        self._retire(case, now)

    # ------------------------------------------------------------------ retention
    def _retire(self, case: Case, now: float) -> None:
        """Note the hour a case ended, so that :meth:`_prune` can drop it ``retention_days`` later."""
        hour = to_iso(now)[:13]
        key = f"{case.district}|{hour}"
        self.tables.retired_cases[key] = list(self.tables.retired_cases.get(key) or []) + [case.id]
        hours = list(self.tables.retired_hours.get(case.district) or [])
        if hour not in hours:
            self.tables.retired_hours[case.district] = sorted(hours + [hour])

    def _prune(self, district: str, now: float) -> None:
        """Drop the cases of ``district`` that ended more than ``retention_days`` ago from the state.

        Their history stays in the case-events topic and their counts in ``daily_stats``.  A violation
        at their site afterwards is a new incident, no longer linked as a recurrence (回潮).
        """
        cutoff = to_iso(now - self.settings.retention_days * 86400.0)[:13]
        hours = list(self.tables.retired_hours.get(district) or [])
        expired = [hour for hour in hours if hour < cutoff]
        if not expired:
            return
        for hour in expired:
            for incident_id in self.tables.retired_cases.pop(f"{district}|{hour}") or []:
                self._forget(incident_id)
        self.tables.retired_hours[district] = hours[len(expired):]

    def _forget(self, incident_id: str) -> None:
        case = self.load(incident_id)
        if case is None or case.file.is_open:
            return
        for violation_id in case.incident.get("violation_ids", []):
            if self.tables.violation_cases.get(violation_id) == incident_id:
                self.tables.violation_cases.pop(violation_id)
        scenario = case.incident["scenario"]
        for name in case.presence.spots:
            camera_id, zone_id = name.split("/", 1)
            if self.tables.site_cases.get(site_key(scenario, camera_id, zone_id)) == incident_id:
                self.tables.site_cases.pop(site_key(scenario, camera_id, zone_id))
        self._saved.pop(incident_id, None)
        self.tables.cases.pop(incident_id)

    def _count(self, case: Case, now: float, counter: str, amount: float = 1) -> None:
        key = stats_key(now, self.timezone, case.incident["scenario"], case.incident["grid_id"],
                        case.file.officer_id, case.incident["camera_id"]).encode()
        self.tables.daily_stats[key] = bump(self.tables.daily_stats.get(key), counter, amount)

    def _alert(self, out: Outputs, kind: str, severity: str, now: float, message: str, case: Optional[Case] = None,
               camera_id: Optional[str] = None, grid_id: Optional[str] = None, suffix: str = "") -> None:
        subject = case.id if case else camera_id or grid_id or "city"
        out.alerts.append(Alert(alert_id=f"{subject}:{kind}:{suffix or to_iso(now)}", kind=kind, severity=severity,
                                at=to_iso(now), message=message, incident_id=case.id if case else None,
                                camera_id=case.incident["camera_id"] if case else camera_id,
                                grid_id=case.incident["grid_id"] if case else grid_id))

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, case: Case, now: float, source: str, out: Outputs, action: str = "dispatch",
                  actor: str = SYSTEM, reason: str = "", target: Optional[str] = None,
                  exclude: Optional[str] = None) -> bool:
        grid = case.incident["grid_id"]
        if target is None:
            candidates = [o for o in on_duty_officers(self.city, grid, now) if o != exclude]
            loads = {o: int(self.tables.officer_open_tasks.get(o) or 0) for o in candidates}
            target = choose_officer(candidates, loads, self.tables.grid_last_assigned.get(grid))
        if target is None:
            if exclude is None:
                self._enqueue(case, now, out)
            return False
        attempt = case.attempt + 1
        task_id = task_id_for(case.id, attempt)
        reason = reason or f"{grid}: fewest open tasks among officers on duty"
        if not self._step(case, DISPATCHED, action, actor, now, source, out, reason=reason, task_id=task_id,
                          officer_id=target):
            return False
        self._end_task(case, "superseded", now, out)
        case.attempt = attempt
        case.accept_by = accept_by(now, self.settings.acceptance_minutes)
        task = Task(task_id=task_id, incident_id=case.id, officer_id=target, grid_id=grid,
                    scenario=case.incident["scenario"], assigned_at=to_iso(now), accept_by=to_iso(case.accept_by),
                    deadline=to_iso(case.deadline), attempt=attempt,
                    first_offence=bool(case.incident.get("first_offence")),
                    note=_task_note(case, reason))
        case.task = task.asdict_deep()
        out.tasks.append(task)
        self.tables.officer_open_tasks[target] = int(self.tables.officer_open_tasks.get(target) or 0) + 1
        self.tables.grid_last_assigned[grid] = target
        self._count(case, now, "dispatched")
        self._unqueue(case)
        return True

    def _end_task(self, case: Case, status: str, now: float, out: Outputs) -> None:
        if not case.task or case.task.get("status") in ("superseded", "done"):
            return
        officer = case.task["officer_id"]
        self.tables.officer_open_tasks[officer] = max(0, int(self.tables.officer_open_tasks.get(officer) or 0) - 1)
        case.task = {**case.task, "status": status}
        out.tasks.append(Task(**case.task))

    def _enqueue(self, case: Case, now: float, out: Outputs) -> None:
        if case.queued:
            return
        grid = case.incident["grid_id"]
        queue = list(self.tables.grid_queues.get(grid) or [])
        queue.append(case.id)
        self.tables.grid_queues[grid] = queue
        case.queued = True
        self._alert(out, "no_officer", "warning", now, f"no officer of grid {grid} on duty: {case.id} waits in "
                    f"the grid queue", case, suffix=f"q{case.attempt}-{case.file.seq}")

    def _unqueue(self, case: Case) -> None:
        if not case.queued:
            return
        grid = case.incident["grid_id"]
        queue = [i for i in (self.tables.grid_queues.get(grid) or []) if i != case.id]
        self.tables.grid_queues[grid] = queue
        case.queued = False

    # ------------------------------------------------------------------ detections
    def _on_detection(self, env: Envelope, d: Detection, out: Outputs) -> None:
        now, first = epoch_of_new(d.observed_at), to_epoch(d.first_seen)
        known_id = self.tables.violation_cases.get(d.violation_id)
        case = self.load(known_id)
        if case is not None and case.is_resend(d, now):
            out.resent += 1
            return
        if case is not None and case.file.state == CLOSED:
            if d.kind == "end":
                _count_dropped(out, "case_closed")
                return
            case = None
        recurrence_of = None
        if case is None:
            if d.kind == "end":
                _count_dropped(out, "no_case")  # the end of a violation no open case holds: nothing to do
                return
            match = match_detection(d.scenario, d.camera_id, d.zone_id, first, now, self.map, self._site_case,
                                    self.settings.dedup_window_s)
            case = self.load(match.incident_id)
            recurrence_of = match.recurrence_of
        if case is None:
            case = self._new_case(env, d, now, recurrence_of, out)
        else:
            self._merge(case, d, now, known=known_id == case.id)
            self._judge(case, now, env.source, out, timers=False)
        self.save(case, out)

    def _merge(self, case: Case, d: Detection, now: float, known: bool = False) -> None:
        """Add a detection to the case; ``known``: its violation id already belongs to this case."""
        inc = case.incident
        inc["detections"] = inc.get("detections", 0) + 1
        case.mark(d, now)
        seen = iso_of(d.observed_at, now)
        inc["last_seen"] = later_iso(seen, inc["last_seen"])
        inc["updated_at"] = later_iso(seen, inc["updated_at"])
        if d.camera_id not in inc["cameras"]:
            inc["cameras"] = inc["cameras"] + [d.camera_id]
        if not known and d.violation_id not in inc["violation_ids"]:
            inc["violation_ids"] = inc["violation_ids"] + [d.violation_id]
        if d.evidence and d.confidence > case.best_confidence:
            case.best_confidence = d.confidence
            inc["evidence"] = [_plain(e) for e in d.evidence]
        case.presence = observe_detection(case.presence, spot(d.camera_id, d.zone_id), d.violation_id, d.kind, now)
        if not known:
            self.tables.violation_cases[d.violation_id] = case.id
            key = site_key(d.scenario, d.camera_id, d.zone_id)
            if self.tables.site_cases.get(key) != case.id and case.file.is_open:
                self.tables.site_cases[key] = case.id

    def _new_case(self, env: Envelope, d: Detection, now: float, recurrence_of: Optional[str],
                  out: Outputs) -> Case:
        camera = self.city.camera(d.camera_id)
        scenario = self.city.scenario(d.scenario)
        anchor = camera.anchor(d.zone_id)
        incident_id = incident_id_for(env.district, d.event_id)
        keys = offender_keys(d.camera_id, d.zone_id, d.plate, d.shop_id)
        window = self.settings.first_offence_window_days
        prior = prior_offences(self.tables.offence_history.get, keys, now, window)
        for key in keys:
            self.tables.offence_history[key] = record_offence(self.tables.offence_history.get(key), incident_id,
                                                              now, window)
        incident = Incident(incident_id=incident_id, camera_id=d.camera_id, scenario=d.scenario, zone_id=d.zone_id,
                            grid_id=camera.grid, state=DETECTED, first_seen=d.first_seen, last_seen=d.observed_at,
                            updated_at=d.observed_at, detections=0, cameras=[], violation_ids=[],
                            lat=anchor.lat, lon=anchor.lon, address=camera.location.address,
                            priority=scenario.priority if scenario else 3, first_offence=prior == 0,
                            prior_offences=prior, recurrence_of=recurrence_of)
        case = Case(incident=incident.asdict_deep(), file=CaseFile(incident_id=incident_id), presence=Presence(),
                    district=env.district, filed_at=now, deadline=deadline_of(now, scenario),
                    offender_keys=keys)
        self._merge(case, d, now)
        self.tables.site_cases[site_key(d.scenario, d.camera_id, d.zone_id)] = incident_id
        reason = "recurrence (回潮) of " + recurrence_of if recurrence_of else "new violation"
        if prior == 0:
            reason += "; first offence (首违不罚): education or warning"
        self._step(case, DETECTED, "detect", SYSTEM, now, env.source, out, reason=reason,
                   evidence=_shas(d.evidence))
        ids = self._open_ids(env.district)
        ids.append(incident_id)
        self.tables.open_cases[env.district] = ids
        self._alert(out, "new_incident", "info", now, f"{d.scenario} at {camera.name} ({d.zone_id or 'frame'})",
                    case, suffix="new")
        self._dispatch(case, now, env.source, out)
        self._count(case, now, "filed")
        return case

    # ------------------------------------------------------------------ camera status
    def _on_camera_status(self, env: Envelope, s: CameraStatus, out: Outputs) -> None:
        now = to_epoch(s.last_inference_at or s.observed_at)
        previous = self.tables.camera_states.get(s.camera_id)
        if previous != s.state:
            self.tables.camera_states[s.camera_id] = s.state
            if previous is not None or s.state == "offline":
                self._alert(out, f"camera_{s.state}", "warning" if s.state == "offline" else "info", now,
                            f"camera {s.camera_id} is {s.state} {s.reason}".strip(), camera_id=s.camera_id,
                            suffix=f"{s.state}:{env.source}")
        if s.state != "online":
            return  # a camera that cannot see verifies nothing
        active = set(s.active)
        for incident_id in self._open_ids(env.district):
            case = self.load(incident_id)
            spots = [name for name in case.presence.spots if name.split("/", 1)[0] == s.camera_id]
            if not spots:
                continue
            for name in spots:
                zone_id = name.split("/", 1)[1]
                case.presence = observe_camera(case.presence, name, f"{case.incident['scenario']}/{zone_id}" in active,
                                               now)
            self._judge(case, now, env.source, out, timers=False)
            self.save(case, out)

    # ------------------------------------------------------------------ feedback
    def _on_feedback(self, env: Envelope, f: Feedback, out: Outputs) -> None:
        case = self.load(f.incident_id)
        if case is None:
            stream_topic, partition = env.stream.rsplit(":", 1)
            out.dead_letters.append(dead_letter(stream_topic, int(partition), env.offset,
                                                f"feedback for unknown case {f.incident_id!r}",
                                                codec.encode(env.payload).decode(), f.at))
            return
        now = to_epoch(f.at)
        to_state = FEEDBACK_STATES[f.action]
        evidence = _shas(f.evidence)
        officers = {o.id for o in self.city.officers}
        if f.task_id and f.task_id != case.file.task_id:
            self._refuse(case, to_state, f.action, f.actor, now, env.source,
                         f"task {f.task_id} is not the current task {case.file.task_id} of this case", out, evidence)
        elif f.action in ("accept", "arrive", "resolve") and f.actor in officers and f.actor != case.file.officer_id:
            self._refuse(case, to_state, f.action, f.actor, now, env.source,
                         f"the case is assigned to {case.file.officer_id}, not to {f.actor}", out, evidence)
        elif f.action == "reject" and not f.reason.strip():
            self._refuse(case, to_state, f.action, f.actor, now, env.source, "a rejection needs a reason", out,
                         evidence)
        elif f.action == "reassign":
            target = f.target_officer
            if target is not None and target not in officers:
                self._refuse(case, to_state, f.action, f.actor, now, env.source, f"unknown officer {target!r}", out)
            elif casefile.check(case.file, DISPATCHED) is not None:
                self._step(case, DISPATCHED, "reassign", f.actor, now, env.source, out)  # recorded as refused
            elif not self._dispatch(case, now, env.source, out, action="reassign", actor=f.actor,
                                    reason=f.reason or "reassigned by operator", target=target,
                                    exclude=case.file.officer_id):
                self._refuse(case, to_state, f.action, f.actor, now, env.source,
                             "no other officer of the grid is on duty", out)
        elif self._step(case, to_state, f.action, f.actor, now, env.source, out, reason=f.reason or f.note,
                        evidence=evidence):
            if f.action == "accept" and case.task:
                case.task = {**case.task, "status": "accepted"}
                out.tasks.append(Task(**case.task))
            elif f.action == "resolve":
                case.resolved_at = now
        case.incident["updated_at"] = to_iso(max(now, to_epoch(case.incident["updated_at"])))
        self.save(case, out)

    # ------------------------------------------------------------------ timers and verification
    def _on_tick(self, env: Envelope, now: float, out: Outputs) -> None:
        for grid in env.district.split("+"):
            for incident_id in list(self.tables.grid_queues.get(grid) or []):
                case = self.load(incident_id)
                if case is not None and case.file.is_open and self._dispatch(case, now, "tick", out):
                    self.save(case, out)
        for incident_id in self._open_ids(env.district):
            case = self.load(incident_id)
            if case is None:
                continue
            seq = case.file.seq
            self._judge(case, now, "tick", out, timers=True)
            if case.file.seq != seq:
                self.save(case, out)
        self._prune(env.district, now)

    def _judge(self, case: Case, now: float, source: str, out: Outputs, timers: bool) -> None:
        """Let the camera's observations and (on ticks) the clock move the case on."""
        if not case.file.is_open:
            return
        working = case.file.working_state
        decision = verdict(case.presence, working, case.resolved_at, now, self.settings.verify_grace_s)
        if decision == REOPEN:
            seen = to_iso(case.presence.last_present_at)
            if self._step(case, REOPENED, "verify", CAMERA, now, source, out,
                          reason=f"violation still present at {seen}, after the resolution and grace period"):
                case.resolved_at = None
                self._dispatch(case, now, source, out, action="redispatch", reason="rework after failed verification")
        elif decision == VERIFY:
            if self._step(case, VERIFIED, "verify", CAMERA, now, source, out,
                          reason=f"camera sees no violation since {to_iso(case.presence.absent_since)}"):
                self._step(case, CLOSED, "close", SYSTEM, now, source, out, reason="verified by the camera")
        elif decision == SELF_CORRECT:
            if self._step(case, SELF_CORRECTED, "verify", CAMERA, now, source, out,
                          reason=f"gone before the officer arrived (absent since "
                                 f"{to_iso(case.presence.absent_since)})"):
                self._step(case, CLOSED, "close", SYSTEM, now, source, out, reason="self-corrected, camera confirmed")
        if not timers or not case.file.is_open:
            return
        if case.file.working_state == DISPATCHED and case.accept_by is not None and now >= case.accept_by:
            previous = case.file.officer_id
            if not self._dispatch(case, now, source, out, action="reassign", actor=TIMER, exclude=previous,
                                  reason=f"not accepted by {previous} within "
                                         f"{self.settings.acceptance_minutes:g} min"):
                case.accept_by = now + self.settings.acceptance_minutes * 60.0
                self._alert(out, "no_officer", "warning", now, f"{case.id}: not accepted by {previous} and no other "
                            f"officer of {case.incident['grid_id']} on duty", case, suffix=f"acc{case.file.seq}")
        if not case.file.escalated and now >= case.deadline and case.file.is_open:
            self._step(case, ESCALATED, "escalate", TIMER, now, source, out,
                       reason=f"deadline {to_iso(case.deadline)} passed")


def _count_dropped(out: Outputs, reason: str) -> None:
    out.dropped_ends[reason] = out.dropped_ends.get(reason, 0) + 1


def _task_note(case: Case, reason: str) -> str:
    inc = case.incident
    parts = [reason]
    if inc.get("first_offence"):
        parts.append("首违不罚 first offence: educate / warn, no penalty")
    else:
        parts.append(f"prior offences: {inc.get('prior_offences', 0)}")
    if inc.get("recurrence_of"):
        parts.append(f"回潮 recurrence of {inc['recurrence_of']}")
    return "; ".join(parts)


def _plain(evidence: Any) -> dict[str, Any]:
    if isinstance(evidence, dict):
        return evidence
    return evidence.asdict_deep()


def _shas(evidence: list[Any]) -> tuple[str, ...]:
    return tuple(_plain(e)["sha256"] for e in evidence)
