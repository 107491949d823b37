"""One plate for one vehicle track, voted over its frames: larger and sharper crops weigh more.

Example::

    >>> vote = PlateVote()
    >>> round(vote.add(PlateRead("皖A12345", 0.95, (0, 0, 120, 40))), 1)  # its weight: confidence x sqrt(area)
    65.8
    >>> _ = vote.add(PlateRead("皖A12346", 0.90, (0, 0, 60, 20)))
    >>> _ = vote.add(PlateRead("皖A12345", 0.97, (0, 0, 100, 34)))
    >>> vote.result()
    VotedPlate(plate='皖A12345', confidence=0.7651, reads=2, frames=3)
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from detector.plates.reader import PlateRead

MIN_SHARE = 0.5  # the winner needs more than half the weight of all reads
MIN_CONFIDENCE = 0.5  # of the voted plate (its share x the mean confidence of its reads)
SHARP_LAPLACIAN = 300.0  # variance of the Laplacian at which a crop counts as fully sharp


@dataclass(frozen=True)
class VotedPlate:
    plate: str
    confidence: float
    reads: int  # reads that voted for it
    frames: int  # reads in all


def sharpness(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """0..1: variance of the Laplacian of the plate crop, relative to :data:`SHARP_LAPLACIAN`.

    >>> flat = np.zeros((50, 50, 3), np.uint8); sharpness(flat, (0, 0, 50, 50))
    0.0
    """
    x1, y1, x2, y2 = box
    crop = image[max(y1, 0):y2, max(x1, 0):x2]
    if crop.size == 0:
        return 0.0
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    return min(1.0, float(cv2.Laplacian(gray, cv2.CV_64F).var()) / SHARP_LAPLACIAN)


def weight(read: PlateRead, sharp: float = 1.0) -> float:
    """A read's vote: its confidence x sqrt(plate box area) x (0.25 + 0.75 sharpness).

    >>> round(weight(PlateRead("皖A12345", 0.9, (0, 0, 100, 25))), 1)
    45.0
    """
    x1, y1, x2, y2 = read.box
    return read.confidence * math.sqrt(max(x2 - x1, 1) * max(y2 - y1, 1)) * (0.25 + 0.75 * sharp)


@dataclass
class PlateVote:
    """Reads of one vehicle track; :meth:`result` is the voted plate or None when not sure."""

    min_share: float = MIN_SHARE
    min_confidence: float = MIN_CONFIDENCE
    weights: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    confidences: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    frames: int = 0

    def add(self, read: Optional[PlateRead], image: Optional[np.ndarray] = None) -> float:
        """One frame's best read of the track (None: the frame gave none); ``image`` adds sharpness.

        Returns the read's weight in the vote (0 for None)."""
        if read is None:
            return 0.0
        self.frames += 1
        sharp = sharpness(image, read.box) if image is not None else 1.0
        vote = weight(read, sharp)
        self.weights[read.plate] += vote
        self.confidences[read.plate].append(read.confidence)
        return vote

    def result(self) -> Optional[VotedPlate]:
        if not self.weights:
            return None
        plate, best = max(self.weights.items(), key=lambda item: item[1])
        share = best / sum(self.weights.values())
        mean = sum(self.confidences[plate]) / len(self.confidences[plate])
        confidence = round(share * mean, 4)
        if share <= self.min_share or confidence < self.min_confidence:
            return None
        return VotedPlate(plate, confidence, len(self.confidences[plate]), self.frames)
