"""Camera privacy zones: parts of a view (the windows of homes) blacked out on every frame, first thing.

A camera's ``privacy_zones`` (``cameras.yaml``, polygons in normalised image coordinates) are painted
black on each frame as the pipeline receives it, before the motion gate, the model, the tracker, the
plate stage and every picture stored: nothing downstream ever has those pixels.  The pixel mask is
drawn once per frame size and reused.

Example::

    >>> import numpy as np
    >>> blackout = PrivacyBlackout([((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))])
    >>> frame = np.full((4, 8, 3), 200, np.uint8)
    >>> int(blackout.apply(frame)[:, :4].max()), int(frame[:, 5:].min())
    (0, 200)
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from nonsite.config import Camera

Point = tuple[float, float]
Polygon = tuple[Point, ...]


def polygons_of(camera: Camera) -> list[Polygon]:
    """The camera's privacy zones as polygons, in config order."""
    return [tuple((float(x), float(y)) for x, y in zone.polygon) for zone in camera.privacy_zones]


def zone_mask(polygons: Sequence[Polygon], shape: tuple[int, ...]) -> np.ndarray:
    """A boolean mask of an image of ``shape``: True on every pixel a polygon touches (its edge included).

    >>> bool(zone_mask([((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))], (3, 5)).all())
    True
    """
    height, width = shape[:2]
    canvas = np.zeros((height, width), np.uint8)
    for polygon in polygons:
        # a normalised 1.0 is the far edge of the last pixel: scale to width - 1 so the edge pixel is included
        points = np.array([[round(x * (width - 1)), round(y * (height - 1))] for x, y in polygon], np.int32)
        cv2.fillPoly(canvas, [points], 255)
    return canvas.astype(bool)


class PrivacyBlackout:
    """One camera's privacy zones, painted black on its frames (in place)."""

    def __init__(self, polygons: Sequence[Polygon]) -> None:
        self.polygons = list(polygons)
        self._masks: dict[tuple[int, int], np.ndarray] = {}

    def __bool__(self) -> bool:
        return bool(self.polygons)

    def mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """The zones' pixels in an image of ``shape`` (cached per size)."""
        size = (int(shape[0]), int(shape[1]))
        if size not in self._masks:
            self._masks[size] = zone_mask(self.polygons, size)
        return self._masks[size]

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Black out the zones in ``image`` itself and return it."""
        if self.polygons:
            image[self.mask(image.shape)] = 0
        return image
