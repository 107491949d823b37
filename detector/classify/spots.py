"""A spot's own head, trained from an operator's labelled crops of one camera's zone (issue 10, item 4).

The generic heads (``models/scene_heads.npz``) have seen a few dozen photos of other streets; a city's own
camera sees one spot all day.  Every review decision will store a labelled crop of the spot (the review
queue is a later change); :func:`train_spot` turns those crops into a head for that spot, with its label
counts, its cross-validated accuracy, precision and recall, and its hash.  It takes over from the generic
head once it is ``ready``: at least ``min_per_label`` crops of each label (:mod:`detector.classify.scenes`).
Saved as ``<spots_dir>/<camera>/<zone>/<scenario>.npz``.

Example (features stand in for embedded crops)::

    >>> rng = np.random.default_rng(0)
    >>> present = [rng.normal(1.0, 0.3, 8) for _ in range(6)]
    >>> absent = [rng.normal(-1.0, 0.3, 8) for _ in range(6)]
    >>> head, report = fit_spot(np.array(present + absent), [True] * 6 + [False] * 6, "material_piling")
    >>> report.label_counts, report.accuracy, report.ready
    ({'present': 6, 'absent': 6}, 1.0, True)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from detector.classify.heads import LinearHead, embedding, unit
from detector.classify.tflite import ImageModel

MIN_PER_LABEL = 5  # crops of each label before a spot's head takes over from the generic one
FULL_CROP = (0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class LabelledCrop:
    """One crop of the spot (BGR, the zone's box as the detector cuts it) and what an operator said of it."""

    image: np.ndarray
    present: bool


@dataclass(frozen=True)
class SpotReport:
    """What a spot's head was trained on and how well it does on crops it did not see."""

    label_counts: dict[str, int]
    accuracy: Optional[float]  # cross-validated; None with fewer than 2 crops of a label
    precision: Optional[float]
    recall: Optional[float]
    model_hash: str
    ready: bool  # enough labels of each kind to take over from the generic head

    def about(self) -> dict[str, object]:
        return {"label_counts": self.label_counts, "cv_accuracy": self.accuracy, "cv_precision": self.precision,
                "cv_recall": self.recall, "ready": self.ready, "source": "spot"}


def fit_head(features: np.ndarray, present: Sequence[bool], scenario: str, strength: float = 1.0) -> LinearHead:
    """A logistic regression on L2-normalised features (classes weighted by their counts), as a head."""
    from sklearn.linear_model import LogisticRegression

    rows = np.array([unit(f) for f in features])
    model = LogisticRegression(C=strength, class_weight="balanced", max_iter=2000)
    model.fit(rows, np.asarray(present, bool))
    return LinearHead(scenario, model.coef_[0].astype(np.float32), float(model.intercept_[0]))


def cross_validated(features: np.ndarray, present: Sequence[bool], scenario: str,
                    groups: Optional[Sequence[str]] = None, threshold: float = 0.5) -> np.ndarray:
    """Each crop's probability from a head trained without it: stratified k-fold (k up to 5), or leave one
    group out when ``groups`` (a photo, a place) are given."""
    from sklearn.model_selection import LeaveOneGroupOut, StratifiedKFold

    labels = np.asarray(present, bool)
    if groups is not None:
        splits = LeaveOneGroupOut().split(features, labels, groups)
    else:
        folds = int(min(5, labels.sum(), (~labels).sum()))
        splits = StratifiedKFold(folds, shuffle=True, random_state=0).split(features, labels)
    probabilities = np.full(len(labels), np.nan)
    for train, test in splits:
        if labels[train].all() or not labels[train].any():
            continue  # a fold with one label only cannot train
        head = fit_head(features[train], labels[train], scenario)
        probabilities[test] = [head.probability(features[i]) for i in test]
    return probabilities


def figures(probabilities: np.ndarray, present: Sequence[bool], threshold: float = 0.5) -> tuple[float, ...]:
    """Accuracy, precision and recall of the crops that got a probability (NaN where undefined)."""
    known = ~np.isnan(probabilities)
    truth, said = np.asarray(present, bool)[known], probabilities[known] >= threshold
    hits = float((truth & said).sum())
    accuracy = float((truth == said).mean()) if known.any() else float("nan")
    precision = hits / said.sum() if said.any() else float("nan")
    recall = hits / truth.sum() if truth.any() else float("nan")
    return accuracy, precision, recall


def fit_spot(features: np.ndarray, present: Sequence[bool], scenario: str,
             min_per_label: int = MIN_PER_LABEL) -> tuple[LinearHead, SpotReport]:
    """A spot's head from embedded crops, and its report (cross-validated when each label has 2 crops or more)."""
    labels = np.asarray(present, bool)
    counts = {"present": int(labels.sum()), "absent": int((~labels).sum())}
    if min(counts.values()) == 0:
        raise ValueError(f"{scenario}: a spot's head needs crops of both labels, got {counts}")
    accuracy = precision = recall = None
    if min(counts.values()) >= 2:
        accuracy, precision, recall = (None if np.isnan(v) else round(float(v), 4)
                                       for v in figures(cross_validated(features, labels, scenario), labels))
    head = fit_head(features, labels, scenario)
    report = SpotReport(counts, accuracy, precision, recall, head.model_hash, min(counts.values()) >= min_per_label)
    return LinearHead(scenario, head.coef, head.intercept, report.about()), report


def train_spot(crops: Sequence[LabelledCrop], embedder: ImageModel, scenario: str,
               min_per_label: int = MIN_PER_LABEL) -> tuple[LinearHead, SpotReport]:
    """Embed the operator's crops of one spot and fit its head (:func:`fit_spot`)."""
    if not crops:
        raise ValueError(f"{scenario}: no labelled crops to train a spot's head from")
    features = np.array([embedding(embedder, crop.image, FULL_CROP) for crop in crops])
    return fit_spot(features, [crop.present for crop in crops], scenario, min_per_label)


def spot_file(spots_dir: Path, camera_id: str, zone_id: str, scenario: str) -> Path:
    return Path(spots_dir) / camera_id / zone_id / f"{scenario}.npz"


def save_spot(path: Path, head: LinearHead) -> None:
    """Write the head atomically: a detector reading the file sees the old head or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as file:
        np.savez_compressed(file, **head.arrays())
    os.replace(temporary, path)


def load_spot(path: Path, scenario: str) -> LinearHead:
    with np.load(path, allow_pickle=False) as data:
        return LinearHead.from_arrays(scenario, {name: data[name] for name in data.files})
