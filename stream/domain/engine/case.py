"""One case as the engine keeps it, and the incident snapshot it publishes.

Example::

    >>> incident_id_for("G01", "e1")
    'G01.84896d3e06788462'
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Optional

from contract import Detection, Incident
from stream.domain.casefile import CaseFile
from stream.domain.intake import Fields
from stream.domain.verify import Presence
from stream.domain.engine.timeutil import to_iso

INCIDENT_DEFAULTS = {name: Incident.defaults().get(name) for name in Incident.field_names()}


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
    # violation id -> [epoch of its newest detection applied, the event id applied at that moment]
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
        return mark is not None and (at < mark[0] or (at == mark[0] and d.event_id == mark[1]))

    def mark(self, d: Detection, at: float) -> None:
        # replaced, never changed in place: copies of the case share it
        self.marks = {**self.marks, d.violation_id: [at, d.event_id]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Case":
        values = dict(data)
        values["incident"] = dict(data["incident"])  # the engine edits it; lists in it are replaced, not mutated
        values["file"] = CaseFile.from_dict(data["file"])
        values["presence"] = Presence.from_dict(data["presence"])
        return cls(**values)



def _shown_state(case: "Case") -> tuple:
    """What a published snapshot must not skip."""
    return case.file.state, case.file.officer_id, case.file.task_id, case.file.reopen_count


def snapshot_of(case: "Case") -> Fields:
    """The Incident record (all its fields, JSON-ready) as published on the incidents topic."""
    return Fields({**INCIDENT_DEFAULTS, **case.incident, "state": case.file.state,
                   "officer_id": case.file.officer_id, "task_id": case.file.task_id,
                   "deadline": to_iso(case.deadline), "reopen_count": case.file.reopen_count})




def incident_id_for(district: str, detection_event_id: str) -> str:
    """From the detection that opened the case: the same input always yields the same incident id."""
    return f"{district}.{hashlib.sha1(detection_event_id.encode()).hexdigest()[:16]}"



def _plain(evidence: Any) -> dict[str, Any]:
    if isinstance(evidence, dict):
        return evidence
    return evidence.asdict_deep()


def _shas(evidence: list[Any]) -> tuple[str, ...]:
    return tuple(_plain(e)["sha256"] for e in evidence)
