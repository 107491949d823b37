"""How a zone's crop is cut from a camera frame: one definition for the detector and the web.

The detector's scene heads embed a zone's bounding box cut from the frame (:mod:`detector.classify.heads`);
the web cuts the same box from a case's evidence picture to store an operator's labelled crop of that spot
(:mod:`web.spot_labels`), so a head trained on the stored crops sees what the detector will show it.  This
module holds the cut, so it is written once (the web may not import the detector; it cuts a picture it
decoded with Pillow at :func:`zone_pixels`, the detector slices its frame with :func:`zone_crop`).  No numpy
here: the web's install has none.

Example::

    >>> import numpy as np
    >>> frame = np.zeros((100, 200, 3), np.uint8)
    >>> zone_box(((0.1, 0.2), (0.5, 0.2), (0.3, 0.9)))
    (0.1, 0.2, 0.5, 0.9)
    >>> zone_crop(frame, ((0.1, 0.2), (0.5, 0.2), (0.3, 0.9))).shape
    (70, 80, 3)
    >>> zone_pixels(((0.1, 0.2), (0.5, 0.2), (0.3, 0.9)), (100, 200))
    (20, 20, 100, 90)
"""
from __future__ import annotations

from typing import Any, Sequence

Array = Any  # a numpy array (height, width, channels): numpy is not imported here

Box = tuple[float, float, float, float]  # normalised x1, y1, x2, y2
Pixels = tuple[int, int, int, int]


def box_pixels(box: Box, shape: tuple[int, int]) -> Pixels:
    """``box`` in pixels, at least one pixel wide and high."""
    height, width = shape
    x1, y1 = int(box[0] * width), int(box[1] * height)
    x2, y2 = max(x1 + 1, int(round(box[2] * width))), max(y1 + 1, int(round(box[3] * height)))
    return x1, y1, min(x2, width), min(y2, height)


def zone_box(polygon: Sequence[Sequence[float]]) -> Box:
    """The polygon's bounding box (normalised)."""
    xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
    return (min(xs), min(ys), max(xs), max(ys))


def cut(image: Array, pixels: Pixels) -> Array:
    x1, y1, x2, y2 = pixels
    return image[y1:y2, x1:x2]


def zone_pixels(polygon: Sequence[Sequence[float]], shape: tuple[int, int]) -> Pixels:
    """The zone's bounding box in pixels of a frame of ``shape`` (height, width): where its crop is cut."""
    return box_pixels(zone_box(polygon), shape)


def zone_crop(image: Array, polygon: Sequence[Sequence[float]]) -> Array:
    """The zone's bounding box cut from the frame, as the scene heads see it."""
    return cut(image, zone_pixels(polygon, image.shape[:2]))
