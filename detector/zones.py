"""Zones as plain objects: a polygon in normalised image coordinates and the kind of place it is.

An object is inside a zone when its bottom-centre point (where it touches the ground) is inside
the polygon.

Example::

    >>> walk = ZoneArea("z-walk", "sidewalk", ((0, 0.5), (1, 0.5), (1, 1), (0, 1)))
    >>> walk.contains(bottom_centre((0.4, 0.3, 0.6, 0.8)))
    True
    >>> walk.contains(bottom_centre((0.4, 0.1, 0.6, 0.4)))
    False
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from nonsite.config import Camera

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # normalised x1, y1, x2, y2


@dataclass(frozen=True)
class ZoneArea:
    id: str
    kind: str
    polygon: tuple[Point, ...]

    def contains(self, point: Point) -> bool:
        # a box touching the frame's bottom or right edge has its point on the edge: count it as inside
        x, y = min(point[0], 1.0 - 1e-6), min(point[1], 1.0 - 1e-6)
        return point_in_polygon((x, y), self.polygon)


def zones_of(camera: Camera) -> list[ZoneArea]:
    """The camera's configured zones, in config order."""
    return [ZoneArea(z.id, z.kind, tuple((float(x), float(y)) for x, y in z.polygon)) for z in camera.zones]


def bottom_centre(box: Box) -> Point:
    x1, _, x2, y2 = box
    return ((x1 + x2) / 2.0, y2)


def centre(box: Box) -> Point:
    x1, y1, x2, y2 = box
    return ((x1 + x2) / 2.0, (y1 + y2) / 2.0)


def point_in_polygon(point: Point, polygon: Sequence[Point]) -> bool:
    """Ray casting; points on the boundary count as inside the half-open edges they touch."""
    x, y = point
    inside = False
    count = len(polygon)
    for index in range(count):
        xa, ya = polygon[index]
        xb, yb = polygon[(index + 1) % count]
        if (ya > y) != (yb > y):
            crossing = xa + (y - ya) * (xb - xa) / (yb - ya)
            if x < crossing:
                inside = not inside
    return inside


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def covered_fraction(inner: Box, outer: Box) -> float:
    """How much of ``inner``'s area lies inside ``outer``."""
    ix = max(0.0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    iy = max(0.0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    return ix * iy / area if area > 0 else 0.0
