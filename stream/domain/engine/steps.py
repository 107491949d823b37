"""Case steps and their bookkeeping: transitions with their case events and alerts, the end of a case,
retention, and the officer's task and grid queue a step frees."""
from __future__ import annotations

from typing import Optional

from contract import Alert, Task
from stream.domain import casefile
from stream.domain.casefile import CLOSED, DISMISSED, ESCALATED, REJECTED, REOPENED
from stream.domain.dedup import site_key
from stream.domain.engine.case import Case
from stream.domain.engine.core import EngineCore
from stream.domain.engine.outputs import Outputs
from stream.domain.engine.timeutil import to_iso
SYSTEM, CAMERA, TIMER = "system", "camera", "timer"


class CaseSteps(EngineCore):
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
        if to_state == ESCALATED:
            self._alert(out, "escalated", "critical", now, f"{case.id} passed its deadline {to_iso(case.deadline)}"
                        f" in state {before.state}", case, suffix=str(event.seq))
        elif to_state == REOPENED:
            self._alert(out, "reopened", "warning", now, f"{case.id}: {reason}", case, suffix=str(event.seq))
        if to_state in (CLOSED, REJECTED, DISMISSED):
            self._finish(case, now, to_state, out)
        return True

    def _refuse(self, case: Case, to_state: str, action: str, actor: str, now: float, source: str, reason: str,
                out: Outputs, evidence: tuple[str, ...] = ()) -> None:
        case.file, event = casefile.refuse(case.file, to_state, action, reason, actor=actor, at=to_iso(now),
                                           evidence=evidence, source=source)
        out.case_events.append(event)
        self._alert(out, "refused", "warning", now, f"{case.id}: {reason}", case, suffix=str(event.seq))

    def _finish(self, case: Case, now: float, to_state: str, out: Outputs) -> None:
        """Closed, rejected or dismissed: free the officer, retire the task, drop the case from the open set."""
        self._end_task(case, "done", now, out)
        ids = self._open_ids(case.district)
        if case.id in ids:
            ids.remove(case.id)
            self.tables.open_cases[case.district] = ids
        self._unqueue(case)
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

        Their history stays in the case-events topic and the system of record (``history/``).  A violation
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
        for violation_id in case.marks:
            if self.tables.violation_cases.get(violation_id) == incident_id:
                self.tables.violation_cases.pop(violation_id)
        scenario = case.incident["scenario"]
        for name in case.presence.spots:
            camera_id, zone_id = name.split("/", 1)
            if self.tables.site_cases.get(site_key(scenario, camera_id, zone_id)) == incident_id:
                self.tables.site_cases.pop(site_key(scenario, camera_id, zone_id))
        self._saved.pop(incident_id, None)
        self._written.pop(incident_id, None)
        self.tables.cases.pop(incident_id)

    def _alert(self, out: Outputs, kind: str, severity: str, now: float, message: str, case: Optional[Case] = None,
               camera_id: Optional[str] = None, grid_id: Optional[str] = None, suffix: str = "") -> None:
        subject = case.id if case else camera_id or grid_id or "city"
        out.alerts.append(Alert(alert_id=f"{subject}:{kind}:{suffix or to_iso(now)}", kind=kind, severity=severity,
                                at=to_iso(now), message=message, incident_id=case.id if case else None,
                                camera_id=case.incident["camera_id"] if case else camera_id,
                                grid_id=case.incident["grid_id"] if case else grid_id))

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

