"""The second look: the ImageNet classifier's verdict on a candidate's crop before its ``start``.

The COCO model has no class for a stall and is unsure of a far dog (a curled stray dog is a ``teddy bear``
at CCTV scale, a walking one also a ``horse``), and a parked bicycle is as much a ``bicycle`` as a vendor's.
Each scenario says in ``configs/scenarios.yaml`` what the second look does for it
(:class:`nonsite.config.SecondLookRule`):

* ``confirm`` — no candidate starts until the crop's probability of the scenario's ImageNet labels reaches
  ``min_score`` (a vendor's umbrella or bicycle: barrow, shopping cart, tricycle, fruit...);
* ``rescue`` — candidates of the scenario's own classes start as before; a box of a ``rescue_classes`` class
  is a candidate too, and starts only when the second look agrees (a dog boxed as a teddy bear);
* ``off`` — as without it.

Labels are ImageNet class names as in the labels file (any of a line's comma-separated names) or ranges
of the standard 0-based ImageNet-1k indices (``151-268``: the dog breeds); a labels file that starts with
``background`` (1,001 lines, the shared model's) is shifted by one.

Example::

    >>> labels = ImageNetLabels(["background", "tench, Tinca tinca", "goldfish", "great white shark"])
    >>> labels.indices(["goldfish", "0-0"], "stray_dog")
    [1, 2]
    >>> labels.indices(["goldfsh"], "stray_dog")
    Traceback (most recent call last):
    ...
    nonsite.config.common.ConfigError: scenario 'stray_dog': second_look.labels[0]: 'goldfsh' is no ImageNet class name
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from detector.classify.tflite import Box, ImageModel, cut, square_around
from nonsite.config import Scenario
from nonsite.config.common import ConfigError

RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


@dataclass(frozen=True)
class ImageNetLabels:
    """The classifier's output names, one per output index."""

    names: Sequence[str]

    @classmethod
    def read(cls, path: Path) -> "ImageNetLabels":
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        return cls([re.sub(r"^\d+\s*:\s*", "", line) for line in lines])  # "index: name" files too

    @property
    def offset(self) -> int:
        return 1 if self.names and self.names[0].lower() == "background" else 0

    def name(self, index: int) -> str:
        return self.names[index].split(",")[0].strip()

    def indices(self, refs: Sequence[str], scenario_id: str) -> list[int]:
        """Output indices of ImageNet names or ranges; a name or range that is none: one-line ConfigError."""
        by_name: dict[str, int] = {}
        for index, line in enumerate(self.names):
            for synonym in line.split(","):
                by_name.setdefault(synonym.strip().lower(), index)
        found: set[int] = set()
        for position, ref in enumerate(refs):
            where = f"scenario '{scenario_id}': second_look.labels[{position}]"
            match = RANGE.match(ref.strip())
            if match:
                low, high = int(match.group(1)), int(match.group(2) or match.group(1))
                if low > high or high >= len(self.names) - self.offset:
                    raise ConfigError(f"{where}: '{ref}' is no range of ImageNet indices (0 to "
                                      f"{len(self.names) - self.offset - 1}, low-high)")
                found.update(range(low + self.offset, high + self.offset + 1))
            elif ref.strip().lower() in by_name:
                found.add(by_name[ref.strip().lower()])
            else:
                raise ConfigError(f"{where}: '{ref}' is no ImageNet class name")
        return sorted(found)


@dataclass(frozen=True)
class Verdict:
    """What the second look said of one crop: do its labels agree, the best of them, the model's hash."""

    agrees: bool
    score: float  # probability of the scenario's labels, summed
    label: str  # the most probable of the scenario's labels
    top: str  # the most probable label of all
    model: str  # the classifier's sha256, 12 digits

    def caption(self) -> str:
        return f"2nd look {self.label} {self.score:.2f} [{self.model}]"


@dataclass(frozen=True)
class LookRule:
    """One scenario's second look, its labels resolved to output indices."""

    mode: str
    indices: np.ndarray
    min_score: float
    rescue_classes: frozenset[str] = frozenset()

    def needs_look(self, class_name: str) -> bool:
        return self.mode == "confirm" or (self.mode == "rescue" and class_name in self.rescue_classes)


@dataclass
class SecondLook:
    """The classifier and every scenario's rule; :meth:`verdict` on a crop of a frame."""

    model: ImageModel
    labels: ImageNetLabels
    rules: dict[str, LookRule] = field(default_factory=dict)
    margin: float = 0.15
    crops: int = 0  # crops classified so far
    seconds: float = 0.0  # spent cutting and classifying them (wall clock)

    @classmethod
    def load(cls, model_path: Path, labels_path: Path, scenarios: Sequence[Scenario]) -> "SecondLook":
        model = ImageModel.load(model_path)
        labels = ImageNetLabels.read(labels_path)
        scores = model.run(np.zeros((model.size[0], model.size[1], 3), np.uint8)).size
        if scores != len(labels.names):
            raise ConfigError(f"{labels_path}: {len(labels.names)} labels, but {model_path.name} gives {scores} scores")
        look = cls(model, labels)
        for scenario in scenarios:
            rule = scenario.second_look
            if rule is not None and rule.mode != "off":
                look.rules[scenario.id] = LookRule(rule.mode, np.array(labels.indices(rule.labels, scenario.id)),
                                                   rule.min_score, frozenset(rule.rescue_classes))
        return look

    def rule(self, scenario_id: str) -> Optional[LookRule]:
        return self.rules.get(scenario_id)

    def scores(self, image: np.ndarray, box: Box) -> np.ndarray:
        """Class probabilities of the square crop around ``box`` (with some of its surroundings)."""
        started = time.perf_counter()
        self.crops += 1
        scores = self.model.run(cut(image, square_around(box, image.shape[:2], self.margin)))
        self.seconds += time.perf_counter() - started
        return scores

    def verdict(self, scenario_id: str, image: np.ndarray, box: Box) -> Verdict:
        rule = self.rules[scenario_id]
        probabilities = self.scores(image, box)
        return self.judge(rule, probabilities)

    def judge(self, rule: LookRule, probabilities: np.ndarray) -> Verdict:
        ours = probabilities[rule.indices]
        score = float(ours.sum())
        best = int(rule.indices[int(np.argmax(ours))])
        return Verdict(score >= rule.min_score, round(score, 4), self.labels.name(best),
                       self.labels.name(int(np.argmax(probabilities))), self.model.short_hash)
