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
from stream.domain.casefile import AWAITING_REVIEW, DISMISSED, CaseFile
from stream.domain.intake import Fields
from stream.domain.verify import Presence
from stream.domain.engine.timeutil import CANONICAL_LENGTH, to_epoch, to_iso

UNFILED = frozenset({AWAITING_REVIEW, DISMISSED})  # alarms never filed as cases: no deadline runs
UNMARKED = "~0001-01-01T00:00:00.000Z -"  # older than any detection: no detection is a re-send of it
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
    # violation id -> "<observed_at> <event id>" of its newest detection applied (see :meth:`mark`); its keys,
    # in arrival order, are the incident's ``violation_ids`` (stored once: a case holds hundreds)
    marks: dict[str, str] = field(default_factory=dict)
    # whether the marks are this case's own (made by :meth:`mark`) or still the stored ones, which must not change
    marks_owned: bool = field(default=False, repr=False, compare=False)
    id: str = field(init=False, repr=False, compare=False)  # the incident id (read a few times an input)

    def __post_init__(self) -> None:
        self.id = self.file.incident_id

    def copy(self) -> "Case":
        """As independent as ``from_dict(to_dict())``: file and presence are immutable, lists are replaced;
        the marks alone are shared (see :meth:`mark`)."""
        twin = Case.__new__(Case)  # the fields as they are, without the dataclass __init__ (the hot path)
        twin.__dict__ = self.__dict__.copy()
        twin.incident = dict(self.incident)
        return twin

    def reloaded(self) -> "Case":
        """A copy of this case as written to the store, as :meth:`from_dict` would read it back: its marks
        are the stored ones again (file, presence and marks are shared, and the stored ones never change)."""
        twin = self.copy()
        twin.marks_owned = False
        return twin

    def to_dict(self) -> dict[str, Any]:
        return {"incident": self.incident, "file": self.file.to_dict(), "presence": self.presence.to_dict(),
                "district": self.district, "filed_at": self.filed_at, "deadline": self.deadline,
                "best_confidence": self.best_confidence, "attempt": self.attempt, "accept_by": self.accept_by,
                "resolved_at": self.resolved_at, "task": self.task, "offender_keys": self.offender_keys,
                "queued": self.queued, "marks": self.marks}

    def is_resend(self, d: Detection, at: float, seen: str) -> bool:
        """Whether ``d`` (observed at epoch ``at``, ``seen`` as :func:`.timeutil.iso_of` writes it) is not
        newer than what this case applied of its violation: the same event sent again, or an older one
        arriving late.  Either changes no count."""
        mark = self.marks.get(d.violation_id)
        if mark is None:
            return False
        if seen is d.observed_at and mark[0] != "~":  # both canonical: their texts order as their moments
            marked_at = mark[:CANONICAL_LENGTH]
            return seen < marked_at or (seen == marked_at and mark[CANONICAL_LENGTH + 1:] == d.event_id)
        marked_text, _, marked_event = mark.removeprefix("~").partition(" ")
        marked = to_epoch(marked_text)
        return at < marked or (at == marked and d.event_id == marked_event)

    def mark(self, d: Detection, seen: str) -> None:
        """Remember ``d`` as its violation's newest detection applied: ``"<observed_at> <event id>"``, the
        time in canonical text (``seen``), or as sent after a ``~`` when it is not canonical (its microseconds
        count).  One string the changelog writes in less than half the time of a ``[time, event id]`` list,
        and a case's marks are written again by every unit that touches it.

        The stored marks are copied once per load, not once per detection (a case holds hundreds): after
        that the case changes its own in place.  A copy of it (:meth:`copy`, the engine's next load in
        the same unit) shares them, which is safe because the engine saves every case it marks, or
        aborts the unit: the version shared with is never used again.
        """
        if not self.marks_owned:
            self.marks, self.marks_owned = dict(self.marks), True
        text = seen if seen is d.observed_at else "~" + d.observed_at  # iso_of hands back canonical text as is
        self.marks[d.violation_id] = f"{text} {d.event_id}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Case":
        values = dict(data)
        values["incident"] = dict(data["incident"])  # the engine edits it; lists in it are replaced, not mutated
        values["file"] = CaseFile.from_dict(data["file"])
        values["presence"] = Presence.from_dict(data["presence"])
        legacy_ids = values["incident"].pop("violation_ids", None)
        if legacy_ids:  # stored before the marks held them: a violation without a mark is marked as never seen
            marks = data.get("marks", {})
            values["marks"] = {**{violation_id: marks.get(violation_id, UNMARKED) for violation_id in legacy_ids},
                               **marks}
        return cls(**values)



def _shown_state(case: "Case") -> tuple:
    """What a published snapshot must not skip."""
    return case.file.state, case.file.officer_id, case.file.task_id, case.file.reopen_count


def snapshot_of(case: "Case") -> Fields:
    """The Incident record (all its fields, JSON-ready) as published on the incidents topic."""
    return Fields({**INCIDENT_DEFAULTS, **case.incident, "violation_ids": list(case.marks),
                   "state": case.file.state, "officer_id": case.file.officer_id, "task_id": case.file.task_id,
                   "deadline": None if case.file.state in UNFILED else to_iso(case.deadline),
                   "reopen_count": case.file.reopen_count})




def stored_incident(incident: Incident) -> dict[str, Any]:
    """The incident as a case stores it: its ``violation_ids`` are the keys of the case's marks."""
    stored = incident.asdict_deep()
    del stored["violation_ids"]
    return stored


def incident_id_for(district: str, detection_event_id: str) -> str:
    """From the detection that opened the case: the same input always yields the same incident id."""
    return f"{district}.{hashlib.sha1(detection_event_id.encode()).hexdigest()[:16]}"



def _plain(evidence: Any) -> dict[str, Any]:
    if isinstance(evidence, dict):
        return evidence
    return evidence.asdict_deep()


def _shas(evidence: list[Any]) -> tuple[str, ...]:
    return tuple(_plain(e)["sha256"] for e in evidence)
