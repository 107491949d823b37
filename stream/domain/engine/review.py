"""The operator review queue (人工审核): an alarm of a scenario under ``review: operator`` waits in
AWAITING_REVIEW, undispatched, until an operator confirms it (it is filed and dispatched as an automatic
case is) or dismisses it (DISMISSED: a false alarm caught before dispatch, never a task).

The offence is recorded when the alarm is filed, not when it is raised: a dismissed alarm is nobody's prior
offence (首违不罚 counts cases).

Example::

    >>> from stream.domain.casefile import CaseFile
    >>> not_awaiting(CaseFile(incident_id="G01.ab", state="DISPATCHED"))
    'case is DISPATCHED, not awaiting review'
"""
from __future__ import annotations

from typing import Optional

from contract import Feedback
from stream.domain.casefile import AWAITING_REVIEW, DETECTED, DISMISSED, CaseFile
from stream.domain.dispatch import deadline_of
from stream.domain.engine.case import Case
from stream.domain.engine.dispatching import Dispatching
from stream.domain.engine.outputs import Outputs
from stream.domain.offences import prior_offences, record_offence

REVIEW_ACTIONS = ("confirm", "dismiss")


def not_awaiting(file: CaseFile) -> Optional[str]:
    """Why a review action is refused on this case, or None when it awaits review."""
    if file.state == AWAITING_REVIEW:
        return None
    return f"case is {file.state}, not awaiting review"


class Review(Dispatching):
    def _record_offence(self, keys: list[str], incident_id: str, now: float) -> int:
        """Record the case under each offender key; returns its prior offences (before this one)."""
        window = self.settings.first_offence_window_days
        prior = prior_offences(self.tables.offence_history.get, keys, now, window, exclude=incident_id)
        for key in keys:
            self.tables.offence_history[key] = record_offence(self.tables.offence_history.get(key), incident_id,
                                                              now, window)
        return prior

    def _await_review(self, case: Case, where: str, now: float, source: str, reason: str,
                      evidence: tuple[str, ...], out: Outputs) -> None:
        """Open ``case`` as an alarm awaiting review: no offence, no task, an ``awaiting_review`` alert."""
        self._step(case, AWAITING_REVIEW, "detect", "system", now, source, out,
                   reason=f"awaiting operator review (待审核): {reason}", evidence=evidence)
        self._alert(out, "awaiting_review", "warning", now, f"待审核 awaiting review: {where}", case, suffix="review")

    def _on_review(self, case: Case, f: Feedback, now: float, source: str, evidence: tuple[str, ...],
                   out: Outputs) -> None:
        """Apply ``confirm`` or ``dismiss`` (the web lets only operators send them), or record the refusal."""
        to_state = DETECTED if f.action == "confirm" else DISMISSED
        refusal = not_awaiting(case.file)
        if refusal is None and f.action == "dismiss" and not f.reason.strip():
            refusal = "a dismissal needs a reason"
        if refusal is not None:
            self._refuse(case, to_state, f.action, f.actor, now, source, refusal, out, evidence)
        elif f.action == "dismiss":
            self._step(case, DISMISSED, "dismiss", f.actor, now, source, out, reason=f.reason, evidence=evidence)
        elif self._step(case, DETECTED, "confirm", f.actor, now, source, out,
                        reason=f.reason or f.note or "confirmed by the operator", evidence=evidence):
            self._file_confirmed(case, f.actor, now, source, out)

    def _file_confirmed(self, case: Case, actor: str, now: float, source: str, out: Outputs) -> None:
        """A confirmed alarm is filed now, as an automatic case is when detected: offence, deadline, dispatch."""
        inc = case.incident
        case.filed_at = now
        case.deadline = deadline_of(now, self.city.scenario(inc["scenario"]))
        inc["prior_offences"] = self._record_offence(case.offender_keys, case.id, now)
        inc["first_offence"] = inc["prior_offences"] == 0
        self._alert(out, "new_incident", "info", now, f"{inc['scenario']} confirmed by {actor}: {case.id}", case,
                    suffix="new")
        self._dispatch(case, now, source, out)
