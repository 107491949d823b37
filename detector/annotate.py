"""The evidence pictures behind every ``start``: the frame with boxes, track id, zone polygon and time
drawn (``annotated``), and the clean frame from when the object was first seen (``first_seen``).

They are stored, as JPEG, in the one evidence store (:mod:`nonsite.evidence`) under their sha256, so
nobody can alter them unseen.

Example::

    >>> store = EvidenceStore(Path(tmp))                                 # doctest: +SKIP
    >>> store.put(encode_jpeg(annotate(frame, boxes, zones, caption("cam-01", t))), "annotated")  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from contract import to_iso
from detector.zones import Box, ZoneArea

RED, GREEN, YELLOW, WHITE, BLACK = (0, 0, 255), (0, 200, 0), (0, 215, 255), (255, 255, 255), (0, 0, 0)
JPEG_QUALITY = 90


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("could not encode the frame as JPEG")
    return buffer.tobytes()


def _pixels(box: Box, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    height, width = shape[:2]
    return int(box[0] * width), int(box[1] * height), int(box[2] * width), int(box[3] * height)


def _label(image: np.ndarray, text: str, origin: tuple[int, int], color: tuple[int, int, int], scale: float) -> None:
    thickness = max(1, int(round(scale * 2)))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = origin
    y = max(y, h + base)
    cv2.rectangle(image, (x, y - h - base), (x + w, y + base // 2), color, -1)
    cv2.putText(image, text, (x, y - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, BLACK if color != RED else WHITE,
                thickness, cv2.LINE_AA)


@dataclass(frozen=True)
class Drawn:
    """One box to draw: the violating object is ``highlight``."""

    xyxy: Box
    text: str
    highlight: bool = False


def annotate(image: np.ndarray, boxes: Sequence[Drawn], zones: Sequence[ZoneArea], caption: str) -> np.ndarray:
    """A copy of ``image`` with the zone polygons, boxes with their labels, and a caption (camera, time)."""
    canvas = image.copy()
    height, width = canvas.shape[:2]
    scale = max(0.4, min(width, height) / 900)
    for zone in zones:
        points = np.array([[int(x * width), int(y * height)] for x, y in zone.polygon], np.int32)
        overlay = canvas.copy()
        cv2.fillPoly(overlay, [points], YELLOW)
        cv2.addWeighted(overlay, 0.18, canvas, 0.82, 0, dst=canvas)
        cv2.polylines(canvas, [points], True, YELLOW, max(1, int(2 * scale)))
        _label(canvas, f"{zone.id} ({zone.kind})", (int(points[:, 0].min()) + 2, int(points[:, 1].min()) + 20),
               YELLOW, scale * 0.8)
    for item in sorted(boxes, key=lambda b: b.highlight):
        x1, y1, x2, y2 = _pixels(item.xyxy, canvas.shape)
        color = RED if item.highlight else GREEN
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, max(1, int((4 if item.highlight else 2) * scale)))
        _label(canvas, item.text, (x1, y1 - 2), color, scale * (0.9 if item.highlight else 0.6))
    _label(canvas, caption, (5, height - 8), WHITE, scale * 0.8)
    return canvas


def caption(camera_id: str, timestamp: float, scenario: str = "") -> str:
    return " ".join(part for part in (camera_id, to_iso(timestamp), scenario) if part)
