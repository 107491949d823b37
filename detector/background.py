"""Static foreground: a background model that finds new things that arrived and stay (piled materials).

For scenarios whose model has no class for the object (COCO has no "pile"), the detector watches for
regions that differ from the learned background and have stopped changing.  Each region becomes a
pseudo detection of class ``static_object`` that is tracked and ruled like any other object.

The background learns only where nothing is in front of it, so a pile is never absorbed while it
stays.  A change over most of the frame (camera moved, lights switched) resets the model.  Known
limit: an object that was there when the model started and then leaves leaves a "ghost" region;
regions covered by a model detection (a parked car, a person standing) are dropped by the pipeline.

Example::

    >>> model = StaticForeground(settle_s=5)
    >>> street = np.full((90, 160, 3), 120, np.uint8)
    >>> piled = street.copy(); piled[50:80, 100:140] = 30
    >>> model.update(street, 0.0)
    []
    >>> [model.update(piled, t) for t in (1.0, 3.0)]
    [[], []]
    >>> [d.class_name for d in model.update(piled, 9.0)]
    ['static_object']
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from detector.inference import STATIC_OBJECT, DetectedObject
from detector.motion import thumbnail


@dataclass
class StaticForeground:
    width: int = 160
    pixel_threshold: int = 30
    settle_s: float = 10.0  # a region must be unchanged this long before it counts
    min_area: float = 0.003  # of the frame
    learning_rate: float = 0.05
    scene_change: float = 0.5  # fraction of changed pixels that resets the model
    _background: Optional[np.ndarray] = field(default=None, repr=False)
    _previous: Optional[np.ndarray] = field(default=None, repr=False)
    _static_since: Optional[np.ndarray] = field(default=None, repr=False)
    _last_mask: Optional[np.ndarray] = field(default=None, repr=False)
    _last_regions: list[DetectedObject] = field(default_factory=list, repr=False)

    def update(self, image: Optional[np.ndarray], timestamp: float,
               small: Optional[np.ndarray] = None) -> list[DetectedObject]:
        """Learn from a frame that may have changed; returns the static regions at ``timestamp``.

        ``small`` is the frame's :func:`~detector.motion.thumbnail` when the caller already made it.
        """
        small = (small if small is not None else thumbnail(image, self.width)).astype(np.float32)
        if self._background is None or self._background.shape != small.shape:
            return self._reset(small)
        foreground = np.abs(small - self._background) > self.pixel_threshold
        if foreground.mean() > self.scene_change:
            return self._reset(small)
        unchanged = np.abs(small - self._previous) <= self.pixel_threshold
        holding = foreground & unchanged
        self._static_since = np.where(holding, np.fmin(self._static_since, timestamp), np.inf)
        background = ~foreground
        self._background[background] += self.learning_rate * (small[background] - self._background[background])
        self._previous = small
        return self.refresh(timestamp)[1]

    def refresh(self, timestamp: float) -> tuple[bool, list[DetectedObject]]:
        """Static regions at ``timestamp`` for a frame equal to the last one learnt (the motion gate skipped it).

        Returns ``(changed, regions)``; cheap when nothing crossed ``settle_s`` since the last call.
        """
        if self._static_since is None:
            return False, []
        mask = timestamp - self._static_since >= self.settle_s
        if self._last_mask is not None and np.array_equal(mask, self._last_mask):
            return False, self._last_regions
        self._last_mask, self._last_regions = mask, self._regions(mask)
        return True, self._last_regions

    def _reset(self, small: np.ndarray) -> list[DetectedObject]:
        self._background, self._previous = small.copy(), small
        self._static_since = np.full(small.shape, np.inf, np.float64)
        self._last_mask, self._last_regions = None, []
        return []

    def _regions(self, mask: np.ndarray) -> list[DetectedObject]:
        mask = mask.astype(np.uint8)
        # open: drop speckle; close with a wider kernel: one object split by a thin seam is one region
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        height, width = mask.shape
        regions = []
        for x, y, w, h, area in stats[1:count]:
            if area / mask.size >= self.min_area:
                regions.append(DetectedObject(STATIC_OBJECT, 1.0, (float(x / width), float(y / height),
                                                                   float((x + w) / width), float((y + h) / height))))
        return regions
