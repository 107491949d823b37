"""Dispatch (派遣): choose an on-duty officer of the case's grid and issue the task, or queue the case."""
from __future__ import annotations

from typing import Optional

from contract import Task
from stream.domain.casefile import DISPATCHED
from stream.domain.dispatch import accept_by, choose_officer, on_duty_officers, task_id_for
from stream.domain.engine.case import Case
from stream.domain.engine.outputs import Outputs
from stream.domain.engine.steps import SYSTEM, CaseSteps
from stream.domain.engine.timeutil import to_iso


class Dispatching(CaseSteps):
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
        self._unqueue(case)
        return True



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

