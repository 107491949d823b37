"""Read Chinese number plates in a BGR image: only plates of the contract's format, only when sure.

:class:`PlateReader` runs :mod:`detector.plates.hyperlpr` (SSD detection, corner refinement, CTC
recognition) and keeps a read only when its text matches :data:`contract.fields.PLATE_PATTERN`, its
mean character probability is at least ``threshold`` and no character is below ``min_char``:
an unreadable plate gives nothing, never a guess.

Example::

    >>> reader = PlateReader()                                        # doctest: +SKIP
    >>> reader.read(cv2.imread("plates/easypr_01_A88731.jpg"))         # doctest: +SKIP
    [PlateRead(plate='京A88731', confidence=0.98, box=(303, 311, 437, 351))]
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np

from contract.fields import PLATE_PATTERN

PLATE = re.compile(PLATE_PATTERN)
THRESHOLD = 0.85  # mean character probability; true reads on the shared photos score 0.94-0.98
MIN_CHAR = 0.5  # every character at least this sure
DETECTION = 0.5  # the SSD's score for a plate box (HyperLPR's value)
VEHICLE_MARGIN = 0.1  # a vehicle box is widened by this share on each side before looking for plates

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels of the image given


@dataclass(frozen=True)
class PlateRead:
    """One plate read in one image."""

    plate: str
    confidence: float
    box: Box

    def as_json(self) -> dict[str, object]:
        """Example:

        >>> PlateRead("皖A12345", 0.97123, (1, 2, 30, 12)).as_json()
        {'plate': '皖A12345', 'confidence': 0.9712, 'box': [1, 2, 30, 12]}
        """
        return {"plate": self.plate, "confidence": round(self.confidence, 4), "box": list(self.box)}


class Engine(Protocol):
    def detect(self, image: np.ndarray, threshold: float) -> list[tuple[Box, float]]: ...

    def read_box(self, image: np.ndarray, box: Box) -> tuple[str, tuple[float, ...]]: ...


def is_plate(text: str) -> bool:
    """Example:

    >>> is_plate("皖AD12345"), is_plate("京A1234学"), is_plate("ABC123"), is_plate("皖A123")
    (True, True, False, False)
    """
    return PLATE.match(text) is not None


def accept(text: str, char_confidences: tuple[float, ...], threshold: float = THRESHOLD,
           min_char: float = MIN_CHAR) -> Optional[float]:
    """The read's confidence if it is a plate read surely enough, else None.

    >>> accept("皖A12345", (0.99,) * 7)
    0.99
    >>> accept("皖A12345", (0.99,) * 6 + (0.3,)) is None, accept("A12345", (0.99,) * 6) is None
    (True, True)
    """
    if not char_confidences or len(text) != len(char_confidences) or not is_plate(text):
        return None
    confidence = sum(char_confidences) / len(char_confidences)
    if confidence < threshold or min(char_confidences) < min_char:
        return None
    return round(confidence, 4)


def widen(box: Box, shape: tuple[int, ...], margin: float = VEHICLE_MARGIN) -> Box:
    """``box`` grown by ``margin`` of its size on each side, clipped to an image of ``shape``.

    >>> widen((10, 10, 110, 60), (100, 200, 3))
    (0, 5, 120, 65)
    """
    x1, y1, x2, y2 = box
    dx, dy = int((x2 - x1) * margin), int((y2 - y1) * margin)
    return max(x1 - dx, 0), max(y1 - dy, 0), min(x2 + dx, shape[1]), min(y2 + dy, shape[0])


class PlateReader:
    """Plates in an image, or in one vehicle's box of it; the models load on first use."""

    def __init__(self, threshold: float = THRESHOLD, min_char: float = MIN_CHAR, detection: float = DETECTION,
                 engine: Optional[Engine] = None) -> None:
        self.threshold, self.min_char, self.detection = threshold, min_char, detection
        self._engine = engine

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from detector.plates.hyperlpr import shared

            self._engine = shared()
        return self._engine

    def read(self, image: np.ndarray, box: Optional[Box] = None) -> list[PlateRead]:
        """Plates read surely, best first, one per text; boxes in ``image``'s pixels.

        ``box`` (a vehicle's x1, y1, x2, y2) limits the search to that box plus a margin."""
        if image is None or image.ndim != 3 or image.shape[0] < 8 or image.shape[1] < 8:
            return []
        ox, oy = 0, 0
        if box is not None:
            ox, oy, x2, y2 = widen(box, image.shape)
            image = image[oy:y2, ox:x2]
            if image.shape[0] < 8 or image.shape[1] < 8:
                return []
        reads: dict[str, PlateRead] = {}
        for (x1, y1, x2, y2), _ in self.engine.detect(image, self.detection):
            text, chars = self.engine.read_box(image, (x1, y1, x2, y2))
            confidence = accept(text, chars, self.threshold, self.min_char)
            if confidence is None:
                continue
            read = PlateRead(text, confidence, (x1 + ox, y1 + oy, x2 + ox, y2 + oy))
            if text not in reads or reads[text].confidence < confidence:
                reads[text] = read
        return sorted(reads.values(), key=lambda r: -r.confidence)
