"""Ticks and verification: the camera's observations and the clock move open cases on."""
from __future__ import annotations

from typing import Union

from stream.domain.casefile import AWAITING_REVIEW, CLOSED, DISPATCHED, ESCALATED, REOPENED, SELF_CORRECTED, VERIFIED
from stream.domain.engine.case import Case
from stream.domain.engine.dispatching import Dispatching
from stream.domain.engine.outputs import Outputs
from stream.domain.engine.steps import CAMERA, SYSTEM, TIMER
from stream.domain.engine.timeutil import to_iso
from stream.domain.intake import Envelope
from stream.domain.verify import REOPEN, SELF_CORRECT, VERIFY, verdict


class Timers(Dispatching):
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

    def _judge(self, case: Case, now: float, source: Union[str, Envelope], out: Outputs, timers: bool) -> None:
        """Let the camera's observations and (on ticks) the clock move the case on.

        ``source``: where the input came from, or its envelope, whose source is worked out only if the
        case moves (the input of nearly every call is a detection that moves nothing).
        """
        if not case.file.is_open or case.file.state == AWAITING_REVIEW:  # no clock runs before it is filed
            return
        working = case.file.working_state
        decision = verdict(case.presence, working, case.resolved_at, now, self.settings.verify_grace_s)
        if decision is None and not timers:
            return
        if not isinstance(source, str):
            source = source.source
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

