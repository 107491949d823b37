"""The labels of the quality benchmark (``nonsite eval LABELS.yaml``, docs/quality.md).

Per media file (its path relative to the media folder): the zones of the camera that would watch it
(normalised polygons, as in ``cameras.yaml``), how to play it (a still held ``hold_s`` seconds, a video
played ``loops`` times in a row; both sampled every ``interval_s``), and the violations a correct
system finds there: scenario, zone (none for a scenario that applies anywhere), how many physical
violations, and whether they stay to the end of the clip.  Mistakes are one line naming the field.

Example::

    >>> labels = parse_labels({"files": [{"path": "dog.jpg", "expect": [{"scenario": "stray_dog"}]}]}, "x.yaml")
    >>> item = labels.files[0]
    >>> (item.still, item.hold_s(labels.defaults), item.expect[0].zone, item.expect[0].count, item.expect[0].stays)
    (True, 700.0, '', 1, True)
    >>> parse_labels({"files": [{"path": "a.jpg", "expect": [{"scenario": "stray_dog", "zone": "z"}]}]}, "x.yaml")
    Traceback (most recent call last):
    ...
    detector.evaluation.labels.LabelsError: x.yaml: files[0].expect[0].zone: no zone 'z' on this file
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml
from pydantic import Field, ValidationError, model_validator

from detector.sources import IMAGE_SUFFIXES
from nonsite.config import Scenario, Strict, Zone
from nonsite.config.common import FieldError, Identifier, no_duplicates


class LabelsError(Exception):
    """A mistake in a labels file, or labels the configuration cannot satisfy; ``str()`` is one line."""


class Defaults(Strict):
    hold_s: float = Field(default=700.0, gt=0)  # longer than the longest dwell (600 s) plus lost_after_s
    interval_s: float = Field(default=1.0, gt=0)


class Play(Strict):
    """How one file is played; what is left out comes from the defaults."""

    hold_s: Optional[float] = Field(default=None, gt=0)  # a still: shown this long
    loops: Optional[int] = Field(default=None, ge=1)  # a video: played this many times in a row
    interval_s: Optional[float] = Field(default=None, gt=0)  # seconds between sampled frames


class Expected(Strict):
    """Physical violations a correct system finds in one zone of the file (see docs/quality.md)."""

    scenario: Identifier
    zone: str = ""  # empty for a scenario without zone kinds (it applies anywhere)
    count: int = Field(default=1, ge=1)
    stays: bool = True  # the object is still there when the clip ends: any `end` of it is false
    note: str = ""


class MediaLabel(Strict):
    path: str = Field(min_length=1)
    note: str = ""
    zones: list[Zone] = []
    play: Play = Play()
    expect: list[Expected] = []

    @model_validator(mode="after")
    def _consistent(self) -> "MediaLabel":
        no_duplicates([z.id for z in self.zones], "zones", "zone id")
        zone_ids = {z.id for z in self.zones}
        for index, expected in enumerate(self.expect):
            if expected.zone and expected.zone not in zone_ids:
                raise FieldError(f"expect[{index}].zone", f"no zone '{expected.zone}' on this file")
        keys = [f"{e.scenario} in {e.zone or 'anywhere'}" for e in self.expect]
        no_duplicates(keys, "expect", "expectation (one entry per scenario and zone, with its count)", "scenario")
        if self.still and self.play.loops is not None:
            raise FieldError("play.loops", "a still is held (hold_s), not looped")
        if not self.still and self.play.hold_s is not None:
            raise FieldError("play.hold_s", "a video is looped (loops), not held")
        return self

    @property
    def still(self) -> bool:
        return Path(self.path).suffix.lower() in IMAGE_SUFFIXES

    def hold_s(self, defaults: Defaults) -> float:
        return self.play.hold_s or defaults.hold_s

    def interval_s(self, defaults: Defaults) -> float:
        return self.play.interval_s or defaults.interval_s

    def loops(self, defaults: Defaults, clip_s: float) -> int:
        """Plays of a clip ``clip_s`` long: as given, else enough to last the default hold."""
        return self.play.loops or max(1, math.ceil(defaults.hold_s / max(clip_s, 1e-3)))


class LabelsFile(Strict):
    defaults: Defaults = Defaults()
    files: list[MediaLabel] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_paths(self) -> "LabelsFile":
        no_duplicates([f.path for f in self.files], "files", "file", "path")
        return self


def parse_labels(raw: Any, shown: str) -> LabelsFile:
    """The labels from parsed YAML; :class:`LabelsError` naming ``shown`` and the field otherwise."""
    try:
        return LabelsFile.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise LabelsError(f"{shown}: {_first_error(exc)}") from None


def load_labels(path: Path) -> LabelsFile:
    if not path.is_file():
        raise LabelsError(f"{path}: labels file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise LabelsError(f"{path}: line {mark.line + 1 if mark else '?'}: not valid YAML") from None
    return parse_labels(raw, str(path))


def check_scenarios(labels: LabelsFile, scenarios: Sequence[Scenario], shown: str) -> None:
    """Every expectation possible with the configured scenarios: known, enabled, and in a zone of a kind it
    watches (or in none, for a scenario that applies anywhere)."""
    by_id = {s.id: s for s in scenarios}
    for file_index, item in enumerate(labels.files):
        kinds = {z.id: z.kind for z in item.zones}
        for index, expected in enumerate(item.expect):
            where = f"{shown}: files[{file_index}].expect[{index}]"
            scenario = by_id.get(expected.scenario)
            if scenario is None or not scenario.enabled:
                state = "unknown" if scenario is None else "disabled"
                raise LabelsError(f"{where}.scenario: {state} scenario '{expected.scenario}' in scenarios.yaml")
            if not scenario.zone_kinds and expected.zone:
                raise LabelsError(f"{where}.zone: '{scenario.id}' applies anywhere: give no zone")
            if scenario.zone_kinds and kinds.get(expected.zone) not in scenario.zone_kinds:
                wanted = ", ".join(scenario.zone_kinds)
                raise LabelsError(f"{where}.zone: '{scenario.id}' needs a zone of kind {wanted}, "
                                  f"got {expected.zone or 'none'!r}")


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]
                   if not (isinstance(p, str) and p.startswith(("function-", "value_error")))).lstrip(".")
    original = (error.get("ctx") or {}).get("error")
    if isinstance(original, FieldError):
        return f"{path + '.' if path else ''}{original.path}: {original.message}"
    message = {"extra_forbidden": "unknown field", "missing": "required field is missing"}.get(
        error["type"], error["msg"].removeprefix("Value error, "))
    return f"{path or '(top level)'}: {message}"
