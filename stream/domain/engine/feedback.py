"""Feedback (处置反馈): an officer's or operator's action on a case, checked against the case and applied."""
from __future__ import annotations

from contract import Feedback, Task
from contract.deadletter import dead_letter
from stream.domain import casefile
from stream.domain.casefile import ACCEPTED, ARRIVED, DETECTED, DISMISSED, DISPATCHED, REJECTED, RESOLVED
from stream.domain.engine.case import _shas
from stream.domain.engine.review import REVIEW_ACTIONS, Review
from stream.domain.engine.outputs import Outputs
from stream.domain.engine.timeutil import to_epoch, to_iso
from stream.domain.intake import Envelope

FEEDBACK_STATES = {"accept": ACCEPTED, "arrive": ARRIVED, "resolve": RESOLVED, "reject": REJECTED,
                   "reassign": DISPATCHED, "confirm": DETECTED, "dismiss": DISMISSED}


class FeedbackRules(Review):
    def _on_feedback(self, env: Envelope, f: Feedback, out: Outputs) -> None:
        case = self.load(f.incident_id)
        if case is None:
            out.dead_letters.append(dead_letter(*env.origin, f"feedback for unknown case {f.incident_id!r}",
                                                f.to_json(), f.at))
            return
        now = to_epoch(f.at)
        to_state = FEEDBACK_STATES[f.action]
        evidence = _shas(f.evidence)
        officers = {o.id for o in self.city.officers}
        if f.action in REVIEW_ACTIONS:
            self._on_review(case, f, now, env.source, evidence, out)
        elif f.task_id and f.task_id != case.file.task_id:
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

