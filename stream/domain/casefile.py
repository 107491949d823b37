"""The disposal state machine of one case (案件处置), pure: no Kafka, no clock.

Every attempted step becomes a :class:`~contract.CaseEvent`; a refused step is recorded with
``applied=False`` and a reason and leaves the case untouched.  :func:`replay` folds the audit log
back into case files, which is how the audit trail proves itself (执法全过程记录).

Example::

    >>> case = CaseFile(incident_id="G01.ab12")
    >>> case, event = transition(case, DETECTED, "detect", actor="system", at="2026-11-21T01:00:00.000Z")
    >>> case, event = transition(case, RESOLVED, "resolve", actor="O101", at="2026-11-21T01:01:00.000Z")
    >>> event.applied, event.reason
    (False, 'illegal transition DETECTED -> RESOLVED (resolve): allowed from DETECTED: DISPATCHED, ESCALATED, REJECTED, SELF_CORRECTED')
    >>> case.state
    'DETECTED'
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Optional

from contract import CaseEvent

DETECTED, DISPATCHED, ACCEPTED, ARRIVED = "DETECTED", "DISPATCHED", "ACCEPTED", "ARRIVED"
RESOLVED, VERIFIED, CLOSED = "RESOLVED", "VERIFIED", "CLOSED"
REJECTED, REOPENED, SELF_CORRECTED, ESCALATED = "REJECTED", "REOPENED", "SELF_CORRECTED", "ESCALATED"
AWAITING_REVIEW, DISMISSED = "AWAITING_REVIEW", "DISMISSED"  # 待审核, and an alarm an operator dismissed
STATES = (DETECTED, DISPATCHED, ACCEPTED, ARRIVED, RESOLVED, VERIFIED, CLOSED,
          REJECTED, REOPENED, SELF_CORRECTED, ESCALATED, AWAITING_REVIEW, DISMISSED)
TERMINAL = frozenset({CLOSED, REJECTED, DISMISSED})

# ESCALATED is entered from any open state and afterwards behaves like the state it interrupted
# (``resume_state``): escalation alerts supervisors, it does not stop the officer's work.
# An alarm of a scenario under operator review waits in AWAITING_REVIEW, outside the disposal: confirmed it
# is filed (DETECTED) and goes on as any case; dismissed it ends, never dispatched.
TRANSITIONS: dict[Optional[str], frozenset[str]] = {
    None: frozenset({DETECTED, AWAITING_REVIEW}),
    AWAITING_REVIEW: frozenset({DETECTED, DISMISSED}),
    DETECTED: frozenset({DISPATCHED, REJECTED, SELF_CORRECTED, ESCALATED}),
    DISPATCHED: frozenset({DISPATCHED, ACCEPTED, REJECTED, SELF_CORRECTED, ESCALATED}),
    ACCEPTED: frozenset({ARRIVED, DISPATCHED, REJECTED, SELF_CORRECTED, ESCALATED}),
    ARRIVED: frozenset({RESOLVED, DISPATCHED, REJECTED, ESCALATED}),
    RESOLVED: frozenset({VERIFIED, REOPENED, ESCALATED}),
    VERIFIED: frozenset({CLOSED}),
    REOPENED: frozenset({DISPATCHED, REJECTED, SELF_CORRECTED, ESCALATED}),
    SELF_CORRECTED: frozenset({CLOSED}),
    CLOSED: frozenset(),
    REJECTED: frozenset(),
    DISMISSED: frozenset(),
}


@dataclass(frozen=True)
class CaseFile:
    """What the audit log says about one case; rebuilt exactly by :func:`replay`."""

    incident_id: str
    state: Optional[str] = None
    seq: int = 0
    officer_id: Optional[str] = None
    task_id: Optional[str] = None
    resume_state: Optional[str] = None  # the state an escalation interrupted
    escalated: bool = False
    reopen_count: int = 0
    refused: int = 0

    @property
    def is_open(self) -> bool:
        return self.state is not None and self.state not in TERMINAL

    @property
    def working_state(self) -> Optional[str]:
        """The disposal step the case is at, looking through an escalation."""
        return self.resume_state if self.state == ESCALATED else self.state

    def to_dict(self) -> dict:
        return {"incident_id": self.incident_id, "state": self.state, "seq": self.seq, "officer_id": self.officer_id,
                "task_id": self.task_id, "resume_state": self.resume_state, "escalated": self.escalated,
                "reopen_count": self.reopen_count, "refused": self.refused}

    @classmethod
    def from_dict(cls, data: dict) -> "CaseFile":
        return cls(**data)


def allowed_from(case: CaseFile) -> frozenset[str]:
    allowed = TRANSITIONS[case.working_state]
    return allowed - {ESCALATED} if case.state == ESCALATED else allowed


def check(case: CaseFile, to_state: str) -> Optional[str]:
    """Why ``to_state`` is illegal now, or None when it is allowed."""
    if to_state not in STATES:
        return f"unknown state {to_state!r}"
    allowed = allowed_from(case)
    if to_state in allowed:
        return None
    shown = case.state or "(new)"
    if case.state in TERMINAL:
        return f"case is {case.state}: no further transitions"
    choices = ", ".join(sorted(allowed)) or "nothing"
    return f"illegal transition {shown} -> {to_state}: allowed from {shown}: {choices}"


def transition(case: CaseFile, to_state: str, action: str, *, actor: str, at: str, reason: str = "",
               evidence: Iterable[str] = (), task_id: Optional[str] = None, officer_id: Optional[str] = None,
               source: str = "") -> tuple[CaseFile, CaseEvent]:
    """Apply one step, or refuse it; either way return the audit line for it."""
    refusal = check(case, to_state)
    if refusal is not None:
        refusal = refusal.replace(f" -> {to_state}:", f" -> {to_state} ({action}):")
    seq = case.seq + 1
    event = CaseEvent(event_id=f"{case.incident_id}:{seq}", incident_id=case.incident_id, seq=seq, at=at,
                      actor=actor, action=action, from_state=case.state,
                      to_state=to_state, applied=refusal is None, reason=refusal or reason,
                      evidence=sorted(set(evidence)), task_id=task_id if task_id is not None else case.task_id,
                      officer_id=officer_id if officer_id is not None else case.officer_id, source=source)
    return apply_event(case, event), event


def refuse(case: CaseFile, to_state: str, action: str, reason: str, *, actor: str, at: str,
           evidence: Iterable[str] = (), task_id: Optional[str] = None, source: str = "") -> tuple[CaseFile, CaseEvent]:
    """Record a step refused for a reason outside the state table (wrong task, wrong officer...)."""
    seq = case.seq + 1
    event = CaseEvent(event_id=f"{case.incident_id}:{seq}", incident_id=case.incident_id, seq=seq, at=at,
                      actor=actor, action=action, from_state=case.state, to_state=to_state, applied=False,
                      reason=reason, evidence=sorted(set(evidence)), task_id=task_id or case.task_id,
                      officer_id=case.officer_id, source=source)
    return apply_event(case, event), event


def apply_event(case: CaseFile, event: CaseEvent) -> CaseFile:
    """Fold one audit line into the case (the single place a case file changes)."""
    if event.seq != case.seq + 1:
        raise ValueError(f"case {case.incident_id}: event seq {event.seq} after seq {case.seq}")
    if not event.applied:
        return replace(case, seq=event.seq, refused=case.refused + 1)
    if event.from_state != case.state:
        raise ValueError(f"case {case.incident_id}: event {event.seq} moves from {event.from_state}, "
                         f"case is {case.state}")
    to_state = event.to_state
    resume = case.resume_state
    if to_state == ESCALATED:
        resume = case.working_state
    elif case.state == ESCALATED or to_state != case.state:
        resume = None
    return replace(case, state=to_state, seq=event.seq, officer_id=event.officer_id, task_id=event.task_id,
                   resume_state=resume, escalated=case.escalated or to_state == ESCALATED,
                   reopen_count=case.reopen_count + (to_state == REOPENED))


def replay(events: Iterable[CaseEvent]) -> dict[str, CaseFile]:
    """Rebuild every case from its audit log; duplicates (same event_id, at-least-once delivery) are skipped."""
    cases: dict[str, CaseFile] = {}
    seen: set[str] = set()
    for event in sorted(events, key=lambda e: (e.incident_id, e.seq)):
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        case = cases.get(event.incident_id) or CaseFile(incident_id=event.incident_id)
        cases[event.incident_id] = apply_event(case, event)
    return cases

