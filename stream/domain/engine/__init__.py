"""Stage two, pure: the case engine of one district — dedup, dispatch, disposal, verification.

The engine reads and writes plain JSON values in named tables (Faust tables in the worker, dicts in
unit tests) and returns what to publish.  It is deterministic: its clock is the time carried by each
input (a detection's ``observed_at``, a feedback's ``at``, a tick's ``now``) and every id it makes
is derived from the input, so a message processed twice after a crash re-creates the same ids.
Inputs already applied (source offset at or below the one recorded for that source partition and
district) are skipped; the marker is written after everything else of the input.

Example::

    >>> from nonsite.config import load_city
    >>> engine = Engine(load_city("configs"), Tables.in_memory())   # doctest: +SKIP
    >>> engine.handle(envelope).incidents                           # doctest: +SKIP
"""
from __future__ import annotations

from stream.domain.engine.camera import CameraRules
from stream.domain.engine.case import Case, incident_id_for, snapshot_of
from stream.domain.engine.core import EngineCore, InputFailed, input_dead_letter
from stream.domain.engine.detections import DetectionRules
from stream.domain.engine.feedback import FeedbackRules
from stream.domain.engine.outputs import Outputs
from stream.state.tables import Tables

__all__ = ["Case", "Engine", "EngineCore", "InputFailed", "Outputs", "Tables", "incident_id_for", "input_dead_letter",
           "snapshot_of"]


class Engine(DetectionRules, CameraRules, FeedbackRules):
    """The case engine: every rule mixin over :class:`EngineCore` (one class, split by concern)."""
