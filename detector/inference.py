"""The model: ultralytics YOLO with any weights it loads, frames of many cameras batched into one call.

Returns plain typed detections (class name, confidence, normalised box) so the stages after it do
not depend on ultralytics' result objects.  Exports with a fixed batch (TFLite is usually batch 1)
are detected at load and fed frame by frame, with one log line saying so.

Example::

    >>> detector = Detector.load("yolov8n_int8.tflite")           # doctest: +SKIP
    >>> [d.class_name for d in detector.detect([image])[0]]          # doctest: +SKIP
    ['dog', 'bicycle', 'truck', 'car']

The model suppresses overlapping boxes per class only, so one pickup truck can come out as a
``truck`` box and a ``car`` box on the same spot.  :func:`merge_within_groups` keeps one box per
object among the classes of one group (``detector.objects.class_groups``)::

    >>> groups = ClassGroups.of({"vehicle": ["car", "truck", "bus"]})
    >>> pickup = [DetectedObject("truck", 0.70, (0.61, 0.13, 0.90, 0.30)),
    ...           DetectedObject("car", 0.61, (0.61, 0.13, 0.90, 0.30))]
    >>> [d.class_name for d in merge_within_groups(pickup, groups, min_iou=0.5)]
    ['truck']
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
import structlog

from nonsite.config import DetectorSettings, Scenario

log = structlog.get_logger("detector.inference")

Box = tuple[float, float, float, float]

# Pseudo classes made by the detector itself, never by the model.
STATIC_OBJECT = "static_object"


@dataclass(frozen=True)
class DetectedObject:
    """One detection in one frame; ``xyxy`` normalised to the frame (0..1)."""

    class_name: str
    confidence: float
    xyxy: Box


@dataclass(frozen=True)
class ClassGroups:
    """Which model classes name one kind of physical object; a class in no group is a group of its own."""

    group_by_class: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, class_groups: Mapping[str, Sequence[str]]) -> "ClassGroups":
        """From ``detector.objects.class_groups`` (group name -> its classes)."""
        return cls({class_name: group for group, classes in class_groups.items() for class_name in classes})

    def group_of(self, class_name: str) -> str:
        return self.group_by_class.get(class_name, class_name)

    def grouped(self, class_name: str) -> bool:
        return class_name in self.group_by_class


def merge_within_groups(detections: Sequence[DetectedObject], groups: ClassGroups,
                        min_iou: float) -> list[DetectedObject]:
    """One box per object: of boxes of one group overlapping by ``min_iou`` or more, only the most confident stays.

    The kept box is one the model drew, not the union of the group: a union grows and shrinks with
    whichever duplicates the model adds in a frame, which moves the object's bottom-centre (the
    rules read that as the object moving) and inflates the evidence box.  Overlap is IoU, not
    containment: a bus's box from a high camera holds whole cars beside it.  Classes in no group
    are left to the model's own per-class suppression.  Detections keep their order.
    """
    members: dict[str, list[int]] = {}
    for index, detection in enumerate(detections):
        if groups.grouped(detection.class_name):
            members.setdefault(groups.group_of(detection.class_name), []).append(index)
    dropped: set[int] = set()
    for indices in members.values():
        if len(indices) < 2:
            continue
        order = sorted(indices, key=lambda i: -detections[i].confidence)
        overlap = iou_matrix(np.array([detections[i].xyxy for i in order], np.float64))
        suppressed = np.zeros(len(order), bool)
        for rank in range(len(order)):
            if not suppressed[rank]:
                suppressed[rank + 1:] |= overlap[rank, rank + 1:] >= min_iou
        dropped.update(i for i, gone in zip(order, suppressed) if gone)
    return [d for i, d in enumerate(detections) if i not in dropped]


def iou_matrix(boxes: np.ndarray) -> np.ndarray:
    """IoU of every pair of ``(n, 4)`` xyxy boxes."""
    low = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    high = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=2)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area[:, None] + area[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass
class Detector:
    """A loaded model and how many frames it takes per call."""

    model: object
    names: dict[int, str]
    max_batch: int
    imgsz: int = 640
    device: str = "cpu"
    min_confidence: float = 0.25
    weights: str = ""

    @classmethod
    def load(cls, weights: str | Path, imgsz: int = 640, device: str = "cpu", batch: int = 8,
             min_confidence: float = 0.25) -> "Detector":
        from ultralytics import YOLO

        _ultralytics_logs_to_stderr()
        with contextlib.redirect_stdout(sys.stderr):  # ultralytics prints on stdout; ours may carry JSON lines
            model = YOLO(str(weights), task="detect")
            probe = np.zeros((imgsz, imgsz, 3), np.uint8)
            model.predict(probe, imgsz=imgsz, device=device, conf=min_confidence, verbose=False)  # builds the predictor
        backend = model.predictor.model
        detector = cls(model=model, names={int(k): str(v) for k, v in backend.names.items()},
                       max_batch=max(1, min(batch, batch_capacity(backend, batch))), imgsz=imgsz,
                       device=device, min_confidence=min_confidence, weights=str(weights))
        if detector.max_batch == 1 and batch > 1:
            log.info("model has a fixed batch of 1; inferring frame by frame", weights=str(weights),
                     format=getattr(backend, "format", "?"))
        else:
            log.info("model loaded", weights=str(weights), format=getattr(backend, "format", "?"),
                     batch=detector.max_batch, classes=len(detector.names))
        return detector

    @classmethod
    def from_settings(cls, settings: DetectorSettings, weights: Optional[str | Path] = None):
        """A :class:`Detector`, or a :class:`DetectorPool` of ``settings.workers`` of them."""
        def one() -> "Detector":
            return cls.load(weights or settings.weights, imgsz=settings.imgsz, device=settings.device,
                            batch=settings.batch, min_confidence=settings.min_confidence)

        return one() if settings.workers == 1 else DetectorPool([one() for _ in range(settings.workers)])

    @property
    def class_names(self) -> set[str]:
        return set(self.names.values())

    def detect(self, images: Sequence[np.ndarray]) -> list[list[DetectedObject]]:
        """Detections for each image, in order; images may come from different cameras and sizes."""
        found: list[list[DetectedObject]] = []
        for start in range(0, len(images), self.max_batch):
            chunk = list(images[start:start + self.max_batch])
            # imgsz and device were fixed when the predictor was built (Detector.load); passing them
            # again on every call makes ultralytics redo setup work (~12 ms a call measured)
            results = self.model.predict(chunk if len(chunk) > 1 else chunk[0], conf=self.min_confidence,
                                         verbose=False)
            found.extend(self._plain(result) for result in results)
        return found

    def _plain(self, result) -> list[DetectedObject]:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return []
        normalised = boxes.xyxyn.cpu().numpy()
        confidences = boxes.conf.cpu().numpy()
        classes = boxes.cls.cpu().numpy().astype(int)
        return [DetectedObject(self.names.get(int(c), str(int(c))), float(s),
                               tuple(float(v) for v in np.clip(b, 0.0, 1.0)))
                for b, s, c in zip(normalised, confidences, classes)]


MANIFEST = Path(__file__).resolve().parents[1] / "models" / "manifest.yaml"


def check_manifest(weights: str | Path, manifest: Path = MANIFEST) -> Optional[str]:
    """Compare a weights file with its entry (by file name) in ``models/manifest.yaml``.

    Returns a one-line warning when the file's sha256 differs from the pinned one, else None
    (unknown names, unpinned entries and names that are not files pass).
    """
    import hashlib

    import yaml

    path = Path(weights)
    if not path.is_file() or not manifest.is_file():
        return None
    entries = (yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}).get("models", [])
    pinned = next((e.get("sha256") for e in entries if e.get("name") == path.name), None)
    if not pinned:
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != pinned:
        return f"{path}: sha256 {digest} differs from models/manifest.yaml ({pinned}): not the known {path.name}"
    return None


def _ultralytics_logs_to_stderr() -> None:
    """ultralytics logs to stdout, where ``detect-file`` writes its JSON lines: move it to stderr."""
    import logging

    from ultralytics.utils import LOGGER

    for handler in LOGGER.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
            handler.setStream(sys.stderr)


class DetectorPool:
    """Several model instances inferring in parallel threads (model runtimes release the GIL).

    The naive way to use a 2-core machine is one model and one thread (ultralytics runs TFLite on
    ``cpu_count - 1`` threads); two instances on one frame each keep both cores busy with less
    synchronisation than one multi-threaded instance.  Frames are split into contiguous chunks,
    results come back in input order.

    Example::

        >>> pool = DetectorPool([Detector.load(w), Detector.load(w)])          # doctest: +SKIP
        >>> len(pool.detect(images)) == len(images)                              # doctest: +SKIP
        True
    """

    def __init__(self, detectors: Sequence[Detector]):
        from concurrent.futures import ThreadPoolExecutor

        if not detectors:
            raise ValueError("a DetectorPool needs at least one detector")
        self.detectors = list(detectors)
        self.names = self.detectors[0].names
        self.max_batch = sum(d.max_batch for d in self.detectors)
        self._threads = ThreadPoolExecutor(len(self.detectors), thread_name_prefix="infer")
        log.info("inference workers", workers=len(self.detectors), frames_per_call=self.max_batch)

    @property
    def class_names(self) -> set[str]:
        return set(self.names.values())

    def detect(self, images: Sequence[np.ndarray]) -> list[list[DetectedObject]]:
        if len(images) <= self.detectors[0].max_batch:
            return self.detectors[0].detect(images)
        share = -(-len(images) // len(self.detectors))  # ceiling division
        chunks = [images[i:i + share] for i in range(0, len(images), share)]
        futures = [self._threads.submit(d.detect, chunk) for d, chunk in zip(self.detectors, chunks)]
        return [found for future in futures for found in future.result()]

    def close(self) -> None:
        self._threads.shutdown(wait=False)


def batch_capacity(backend, wanted: int) -> int:
    """How many frames one call of this backend takes: PyTorch and dynamic exports any, static exports their own."""
    if getattr(backend, "format", "") == "pt":
        return wanted
    metadata = getattr(backend, "metadata", {}) or {}
    if metadata.get("dynamic"):
        return wanted
    return int(getattr(backend, "batch", 1) or 1)


def missing_classes(scenarios: Iterable[Scenario], class_names: set[str]) -> list[tuple[Scenario, str]]:
    """Scenarios the model cannot see, each with the one line to log at start.

    ``static_foreground`` scenarios are not blind without their class: the background model stands in.
    """
    report = []
    for scenario in scenarios:
        if not scenario.enabled or set(scenario.classes) & class_names:
            continue
        wanted = ", ".join(scenario.classes)
        if scenario.rule == "static_foreground":
            line = f"{scenario.id}: model has none of [{wanted}]; using the static-foreground background model"
        else:
            line = f"{scenario.id}: model has none of its classes [{wanted}]; this scenario cannot fire " \
                   f"(needs a fine-tuned model, see models/finetune.py)"
        report.append((scenario, line))
    return report


def report_missing_classes(scenarios: Iterable[Scenario], class_names: set[str]) -> list[str]:
    lines = [line for _, line in missing_classes(scenarios, class_names)]
    for line in lines:
        log.warning(line)
    return lines


class Timer:
    """Wall time of a block in seconds: ``with Timer() as t: ...; t.elapsed``."""

    def __enter__(self) -> "Timer":
        self.started = time.perf_counter()
        self.elapsed = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.elapsed = time.perf_counter() - self.started
