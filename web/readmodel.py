"""The web's read model: the latest of every incident, task and camera, the audit log and recent alerts.

Built only from the topics (incidents keyed by ``incident_id``, latest ``updated_at`` wins), so a
restart rebuilds it by reading them from the beginning.  Pure and synchronous: the Kafka loop in
:mod:`web.bus` feeds it; :meth:`ReadModel.apply` returns what changed so the loop can push it to
the live wall.

Example::

    >>> model = ReadModel()
    >>> model.apply("alerts", Alert(alert_id="a1", kind="new_incident", severity="info",
    ...             at="2026-11-21T01:00:00.000Z", message="hi"))[0][0]
    'alert'
"""
from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from contract import Alert, CameraStatus, CaseEvent, Record, DeadLetter, Incident, Task, parse_iso
from contract.position import source_of

CLOSED_STATES = frozenset({"CLOSED", "VERIFIED", "SELF_CORRECTED"})
TERMINAL_STATES = CLOSED_STATES | {"REJECTED"}
OPEN_TASK_STATUSES = frozenset({"assigned", "accepted"})
_FEEDBACK_ID = re.compile(r"[0-9a-f]{32}")

Change = tuple[str, Any]  # ("incident", Incident) | ("task", Task) | ("camera", CameraStatus) | ...


def norm_state(state: Optional[str]) -> str:
    return (state or "").upper()


@dataclass(frozen=True)
class Verdict:
    """The case processor's answer to one feedback: applied, or refused with the reason."""

    applied: bool
    reason: str
    action: str
    incident_id: str
    to_state: Optional[str] = None


@dataclass
class ReadModel:
    incidents: dict[str, Incident] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    tasks_by_incident: dict[str, list[str]] = field(default_factory=dict)
    cameras: dict[str, CameraStatus] = field(default_factory=dict)
    alerts: deque = field(default_factory=lambda: deque(maxlen=2000))
    case_events: dict[str, list[CaseEvent]] = field(default_factory=dict)
    outcomes: dict[str, list[Verdict]] = field(default_factory=dict)  # feedback id or position -> verdicts
    feedback_topic: str = ""  # dead letters from this topic answer feedback too
    evidence_cases: dict[str, set[str]] = field(default_factory=dict)  # sha256 -> incident ids
    escalated: set[str] = field(default_factory=set)
    messages: int = 0

    def apply(self, topic_kind: str, record: Record) -> list[Change]:
        """Fold one record in; ``topic_kind`` is the Topics field name (``incidents``, ``case_events``...)."""
        self.messages += 1
        if isinstance(record, Incident):
            return self._incident(record)
        if isinstance(record, Task):
            return self._task(record)
        if isinstance(record, CameraStatus):
            return self._camera(record)
        if isinstance(record, Alert):
            self.alerts.append(record)
            if record.kind == "escalated" and record.incident_id:
                self.escalated.add(record.incident_id)
            return [("alert", record)]
        if isinstance(record, CaseEvent):
            return self._case_event(record)
        if isinstance(record, DeadLetter):
            return self._dead_letter(record)
        return []

    def _incident(self, incident: Incident) -> list[Change]:
        known = self.incidents.get(incident.incident_id)
        if known is not None and parse_iso(known.updated_at) > parse_iso(incident.updated_at):
            return []  # an older snapshot arriving late never overwrites a newer one
        self.incidents[incident.incident_id] = incident
        for evidence in incident.evidence:
            self.evidence_cases.setdefault(evidence.sha256, set()).add(incident.incident_id)
        if norm_state(incident.state) == "ESCALATED":
            self.escalated.add(incident.incident_id)
        return [("incident", incident)]

    def _task(self, task: Task) -> list[Change]:
        ids = self.tasks_by_incident.setdefault(task.incident_id, [])
        if task.task_id not in ids:
            ids.append(task.task_id)
        self.tasks[task.task_id] = task
        return [("task", task)]

    def _camera(self, status: CameraStatus) -> list[Change]:
        known = self.cameras.get(status.camera_id)
        if known is not None and parse_iso(known.observed_at) > parse_iso(status.observed_at):
            return []
        self.cameras[status.camera_id] = status
        return [("camera", status)]

    def _case_event(self, event: CaseEvent) -> list[Change]:
        self.case_events.setdefault(event.incident_id, []).append(event)
        for sha in event.evidence:
            self.evidence_cases.setdefault(sha, set()).add(event.incident_id)
        if event.applied and norm_state(event.to_state) == "ESCALATED":
            self.escalated.add(event.incident_id)
        verdict = Verdict(event.applied, event.reason, event.action, event.incident_id, event.to_state)
        keys = set(_FEEDBACK_ID.findall(f"{event.source} {event.reason}")) | {event.event_id}
        if event.source:
            keys |= {event.source, re.split(r"[#\s]", event.source)[0]}
        for key in keys:
            self.outcomes.setdefault(key, []).append(verdict)
        return [("case_event", event)]

    def _dead_letter(self, letter: DeadLetter) -> list[Change]:
        """A feedback the processor could not use at all (unknown case...) is refused with the dead letter's reason."""
        if letter.topic != self.feedback_topic:
            return []
        try:
            raw = json.loads(letter.raw)
        except (ValueError, RecursionError):  # the raw text is whatever the bad message held
            raw = {}
        raw = raw if isinstance(raw, dict) else {}
        verdict = Verdict(False, letter.reason, str(raw.get("action", "")), str(raw.get("incident_id", "")))
        for key in {source_of(letter.topic, letter.partition, letter.offset), str(raw.get("feedback_id", ""))} - {""}:
            self.outcomes.setdefault(key, []).append(verdict)
        return [("dead_letter", letter)]

    # ------------------------------------------------------------ queries
    def outcome(self, *keys: str) -> Optional[Verdict]:
        """The processor's verdict on one feedback, found by its id or its position on the feedback topic:
        the first refusal if any step was refused, else the first applied step."""
        verdicts = [v for key in keys if key for v in self.outcomes.get(key, [])]
        refused = [v for v in verdicts if not v.applied]
        return (refused or verdicts or [None])[0]

    def tasks_of_incident(self, incident_id: str) -> list[Task]:
        return [self.tasks[t] for t in self.tasks_by_incident.get(incident_id, [])]

    def current_task(self, incident_id: str) -> Optional[Task]:
        incident = self.incidents.get(incident_id)
        if incident is not None and incident.task_id in self.tasks:
            return self.tasks[incident.task_id]
        tasks = self.tasks_of_incident(incident_id)
        return tasks[-1] if tasks else None

    def tasks_of_officer(self, officer_id: str) -> list[Task]:
        return [t for t in self.tasks.values() if t.officer_id == officer_id]

    def officer_may_see(self, officer_id: str, incident_id: str) -> bool:
        return any(t.officer_id == officer_id for t in self.tasks_of_incident(incident_id))

    def incidents_with_evidence(self, sha256: str) -> set[str]:
        return self.evidence_cases.get(sha256, set())

    def history(self, incident_id: str) -> list[CaseEvent]:
        return sorted(self.case_events.get(incident_id, []), key=lambda e: (e.seq, e.at))

    def all_incidents(self) -> Iterable[Incident]:
        return self.incidents.values()
