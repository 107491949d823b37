"""The classifiers a pipeline runs beside its model, loaded from ``detector.second_look`` and ``detector.scenes``.

Each is loaded only when some scenario uses it (``second_look`` not off, ``scene.enabled``) and its switch is
on.  A model file that is not there turns its classifier off with one warning line (kept in ``lines``): the
detector runs as it did without it.  A bad label in a scenario's ``second_look`` is a
:class:`~nonsite.config.ConfigError`.  Model files given by a bare name are looked for beside
``detector.weights``; ``heads`` and ``spots_dir`` relative to the project folder.

Example::

    >>> from nonsite.config import DetectorSettings
    >>> load_classifiers(DetectorSettings(), []).second_look is None
    True
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import structlog

from detector.classify.heads import LinearHead, load_heads
from detector.classify.scenes import SceneWatcher
from detector.classify.second_look import SecondLook, Verdict
from detector.classify.tflite import ImageModel, beside_weights, project_path
from detector.zones import ZoneArea
from nonsite.config import DetectorSettings, Scenario

log = structlog.get_logger("detector.classify")


@dataclass
class Classifiers:
    """What is loaded: the second look, the embedder and the generic heads; and the lines saying what is not."""

    second_look: Optional[SecondLook] = None
    embedder: Optional[ImageModel] = None
    heads: dict[str, LinearHead] = field(default_factory=dict)
    spots_dir: Optional[Path] = None
    settings: Optional[DetectorSettings] = None
    lines: list[str] = field(default_factory=list)

    def look(self, image: np.ndarray) -> Optional[Callable[..., Verdict]]:
        """The second look at a violation's box in this frame, or None without a classifier."""
        second_look = self.second_look
        if second_look is None:
            return None
        return lambda violation: second_look.verdict(violation.scenario.id, image, violation.xyxy)

    def watcher(self, camera_id: str, zones: Sequence[ZoneArea], scenarios: Sequence[Scenario],
                ids: Optional[Iterator[int]] = None) -> Optional[SceneWatcher]:
        if self.embedder is None or self.settings is None:
            return None
        return SceneWatcher.build(camera_id, zones, scenarios, self.embedder, self.heads, self.settings.scenes,
                                  self.spots_dir, ids or itertools.count(1_000_000))


def load_classifiers(settings: DetectorSettings, scenarios: Sequence[Scenario]) -> Classifiers:
    loaded = Classifiers(settings=settings)
    enabled = [s for s in scenarios if s.enabled]
    looking = [s for s in enabled if s.second_look is not None and s.second_look.mode != "off"]
    if settings.second_look.enabled and looking:
        model = beside_weights(settings.second_look.model, settings.weights, project_path)
        labels = beside_weights(settings.second_look.labels, str(model), project_path)
        if _present(loaded, "detector.second_look", model, labels, [s.id for s in looking]):
            loaded.second_look = SecondLook.load(model, labels, looking)
    scened = [s for s in enabled if s.scene is not None and s.scene.enabled]
    if settings.scenes.enabled and scened:
        embedder = beside_weights(settings.scenes.embedder, settings.weights, project_path)
        heads = project_path(settings.scenes.heads)
        if _present(loaded, "detector.scenes", embedder, heads, [s.id for s in scened]):
            loaded.embedder = ImageModel.load(embedder)
            loaded.heads = load_heads(heads)
            loaded.spots_dir = project_path(settings.scenes.spots_dir)
    return loaded


def _present(loaded: Classifiers, setting: str, *paths_and_users) -> bool:
    *paths, users = paths_and_users
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        line = (f"{setting}: {missing[0]} not found; {', '.join(users)} run without it (set the path in "
                f"nonsite.yaml, or NONSITE_CLASSIFIER / NONSITE_EMBEDDER)")
        loaded.lines.append(line)
        log.warning(line)
    return not missing
