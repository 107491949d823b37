"""The engine's entry points and state access: units, journal, source markers, isolation of bad inputs.

The rules per kind of input live in the mixins beside this module (:mod:`.detections`,
:mod:`.camera`, :mod:`.feedback`, :mod:`.timers`), on top of the case steps (:mod:`.steps`) and
dispatch (:mod:`.dispatching`); :class:`stream.domain.engine.Engine` puts them together.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from contract import CameraStatus, DeadLetter, Detection, Feedback
from contract.deadletter import dead_letter, failure_reason
from nonsite.config import City
from contract import wire
from stream.domain.dedup import CityMap
from stream.domain.engine.case import Case
from stream.domain.engine.outputs import Outputs
from stream.domain.engine.timeutil import to_epoch
from stream.domain.intake import Envelope
from stream.state.tables import Tables


WRITTEN_KEPT = 4096  # cases whose last written form the engine keeps decoded (a unit touches tens)


class InputFailed(Exception):
    """Applying input ``index`` of a unit raised ``cause``."""

    def __init__(self, index: int, cause: BaseException):
        super().__init__(f"input {index}: {failure_reason(cause)}")
        self.index, self.cause = index, cause


def input_dead_letter(env: Envelope, reason: str, at: tuple[int, int], cases_topic: str) -> DeadLetter:
    """The dead letter of an input the engine could not apply: where it came from, or its cases message."""
    topic, partition, offset = (cases_topic, *at) if env.kind == "tick" else env.origin
    payload = env.payload.to_json() if hasattr(env.payload, "to_json") else wire.encode(env.payload)
    return dead_letter(topic, partition, offset, f"case engine: {reason}", payload)



class EngineCore:
    def __init__(self, city: City, tables: Tables, city_map: Optional[CityMap] = None):
        self.city, self.tables = city, tables
        self.map = city_map or CityMap.build(city)
        self.settings = city.stream
        # cases saved in the current unit, written to ``cases`` once at its end: a batch repeating one
        # incident converts it from and to its stored form once, not per input
        self._saved: dict[str, Case] = {}
        # the cases written last, each with the dict written: a later unit that reads that very dict
        # back copies the case instead of converting the dict again (see :meth:`load`)
        self._written: dict[str, tuple[dict[str, Any], Case]] = {}

    # ------------------------------------------------------------------ entry point
    def position(self, partition: int) -> Optional[int]:
        """The offset of the last cases-topic message applied from ``partition`` (kept with the state)."""
        return self.tables.journal.latest(f"{self.tables.source_offsets.prefix}@cases|{partition}")

    def handle(self, env: Envelope, commit: bool = True, at: Optional[tuple[int, int]] = None) -> Outputs:
        """Apply one input (exactly once in effect: see :mod:`stream.journal`) and return what to publish.

        With ``commit=False`` the state writes stay buffered until :meth:`commit`: the worker publishes
        the outputs first, so that state never reaches the changelog ahead of what it announced.
        ``at`` is the (partition, offset) of the message in the cases topic, recorded with the state.
        """
        out = self._handle(env)
        if at is not None:
            if self.tables.journal.input_id is None:  # skipped input: record only the position
                self.tables.journal.begin(f"@cases|{at[0]}|{at[1]}")
            self.tables.source_offsets[f"@cases|{at[0]}"] = at[1]
        if commit:
            self.tables.journal.commit()
        return out

    def handle_batch(self, envs: Sequence[Envelope], at: tuple[int, int], commit: bool = True) -> Outputs:
        """Apply the inputs of the cases-topic message at ``at`` = (partition, offset) as one unit.

        The journal unit is the message (``@cases|partition|offset``): its writes are buffered and sent
        together, each key once, the message's position last.  Redone after a crash, the message holds
        the same inputs and starts from the same state (keys it stamped read as ``value_before``), so it
        recomputes the same writes and outputs.  Inputs already applied by an earlier message (intake
        forwards again what it read before a crash) are skipped by their source markers.
        """
        journal = self.tables.journal
        journal.begin(f"@cases|{at[0]}|{at[1]}")
        out = Outputs()
        positions: dict[str, Any] = {}  # source markers of this unit, written once at its end
        try:
            for index, env in enumerate(envs):
                try:
                    self._apply(env, out, journal.read, positions=positions)
                except Exception as exc:
                    raise InputFailed(index, exc) from exc
                out.inputs += 1
            self._write_saved()
            for key, position in positions.items():
                journal.write(key, position)
        except Exception:
            self._abort()
            raise
        journal.write_last(f"{self.tables.source_offsets.prefix}@cases|{at[0]}", at[1])
        if commit:
            journal.commit()
        return out

    def handle_batch_isolated(self, envs: Sequence[Envelope], at: tuple[int, int], cases_topic: str,
                              commit: bool = True) -> Outputs:
        """:meth:`handle_batch`, where an input whose handling raises is dead-lettered, not fatal.

        The unit is aborted and applied again without that input (the engine is deterministic, so the
        others give the same result), until it applies; each input taken out becomes a dead letter with
        the exception's class and text.  Should the unit fail outside any input, every input is
        dead-lettered and only the message's position is recorded, so it is never met again.
        """
        remaining, failed = list(envs), []
        while True:
            try:
                out = self.handle_batch(remaining, at, commit=commit)
                break
            except InputFailed as failure:
                failed.append((remaining.pop(failure.index), failure_reason(failure.cause)))
            except Exception as exc:  # noqa: BLE001  (message content must never stop the worker)
                failed += [(env, failure_reason(exc)) for env in remaining]
                out = self.handle_batch([], at, commit=commit)
                break
        out.dead_letters += [input_dead_letter(env, reason, at, cases_topic) for env, reason in failed]
        return out

    def _handle(self, env: Envelope) -> Outputs:
        journal = self.tables.journal
        if env.kind == "tick":
            journal.begin(f"{env.district}|tick|{env.payload['now']}")
        else:
            journal.begin(f"{env.district}|{env.stream}|{env.offset}")
        out = Outputs()
        try:
            if not self._apply(env, out, journal.latest):
                self._abort()
        except Exception:
            self._abort()
            raise
        return out

    def _abort(self) -> None:
        self._saved.clear()
        self.tables.journal.abort()

    def _write_saved(self) -> None:
        for incident_id, case in self._saved.items():
            data = case.to_dict()
            self.tables.cases[incident_id] = data
            self._written.pop(incident_id, None)  # to the end: the oldest go first
            self._written[incident_id] = (data, case)
        while len(self._written) > WRITTEN_KEPT:
            del self._written[next(iter(self._written))]
        self._saved.clear()

    def _apply(self, env: Envelope, out: Outputs, marker_of: Callable[[str], Any],
               positions: Optional[dict[str, Any]] = None) -> bool:
        """Apply one input unless its source marker (read with ``marker_of``) says it was applied.

        ``positions``: a batch's markers so far, which the batch writes once at its end; without it
        the input is its own unit and its marker is written last.
        """
        if env.kind == "tick":
            marker, position = f"{env.district}|clock", to_epoch(env.payload["now"])
        else:
            marker, position = f"{env.district}|{env.stream}", env.offset
        key = self.tables.source_offsets.prefix + marker
        last = positions[key] if positions is not None and key in positions else marker_of(key)
        if last is not None and position <= last:
            out.skipped += 1
            return False
        if env.kind == "tick":
            self._on_tick(env, position, out)
        elif env.kind == "detections":
            self._on_detection(env, env.payload, out)
        elif env.kind == "camera_status":
            self._on_camera_status(env, env.payload, out)
        elif env.kind == "feedback":
            self._on_feedback(env, env.payload, out)
        if positions is not None:
            positions[key] = position
            return True
        self._write_saved()
        self.tables.source_offsets[marker] = position  # the marker is written last (with the position)
        return True

    def commit(self) -> None:
        self.tables.journal.commit()

    # ------------------------------------------------------------------ state access
    def load(self, incident_id: Optional[str]) -> Optional[Case]:
        """A copy of the case: changes count once :meth:`save` d."""
        if not incident_id:
            return None
        saved = self._saved.get(incident_id)
        if saved is not None:
            return saved.copy()
        data = self.tables.cases.get(incident_id)
        if not data:
            return None
        written = self._written.get(incident_id)
        if written is not None and written[0] is data:  # the store holds what this engine wrote: no conversion
            return written[1].reloaded()
        return Case.from_dict(data)

    def save(self, case: Case, out: Outputs) -> None:
        """Keep ``case`` as the unit's latest version; the caller must not change it afterwards
        (:meth:`load` hands out copies)."""
        self._saved[case.id] = case
        out.snapshot(case)

    def _open_ids(self, district: str) -> list[str]:
        return list(self.tables.open_cases.get(district) or [])

    # ------------------------------------------------------------------ rules, one mixin per kind of input
    def _on_detection(self, env: Envelope, d: Detection, out: Outputs) -> None:
        raise NotImplementedError

    def _on_camera_status(self, env: Envelope, s: CameraStatus, out: Outputs) -> None:
        raise NotImplementedError

    def _on_feedback(self, env: Envelope, f: Feedback, out: Outputs) -> None:
        raise NotImplementedError

    def _on_tick(self, env: Envelope, now: float, out: Outputs) -> None:
        raise NotImplementedError
