"""What the engine hands back to publish for one input or one cases-topic message."""
from __future__ import annotations

from dataclasses import dataclass, field

from contract import Alert, CaseEvent, DeadLetter, Task
from stream.domain.engine.case import Case, _shown_state, snapshot_of
from stream.domain.intake import Fields


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
        # the case file is replaced at every step: the same file shows the same state
        if (pending is not None and pending[1] != self.inputs and pending[0].file is not case.file
                and _shown_state(pending[0]) != _shown_state(case)):
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



def _count_dropped(out: Outputs, reason: str) -> None:
    out.dropped_ends[reason] = out.dropped_ends.get(reason, 0) + 1

