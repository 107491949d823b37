"""HyperLPR's Chinese plate networks (PyPI ``hyperlpr2`` 2.0.0, MIT) on onnxruntime next to OpenCV 5.

The package ships Caffe models and loads them with OpenCV 4's Caffe importer and
``CascadeClassifier``, both gone in OpenCV 5, so it is never imported: its model files are found
with :func:`importlib.util.find_spec` and translated to ONNX in memory (:mod:`detector.plates.caffe`).
The pipeline is HyperLPR's: an SSD finds plates, a refine net regresses the four corners twice,
and a segmentation-free CTC net reads the deskewed 136x36 plate.  Differences: every SSD box
above the detection threshold is read (HyperLPR keeps only the first), and large images are read
at :data:`MAX_SIDE` (HyperLPR runs the SSD at full resolution).

Example::

    >>> engine = HyperLpr()                                    # doctest: +SKIP
    >>> engine.read(cv2.imread("car.jpg"))                     # doctest: +SKIP
    [RawRead(text='皖AYL375', confidence=0.96, char_confidences=(...), box=(226, 430, 360, 500))]
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from detector.plates import caffe

PACKAGE = "hyperlpr2"
MAX_SIDE = 1280  # longest side the SSD sees; the crops for reading come from the full image
SSD_MEAN, SSD_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # RGB, after /255
SSD_LOC, SSD_CONF = "ssd0_concat1", "flatten0"
NMS_IOU = 0.45


class ModelsMissing(RuntimeError):
    """The ``hyperlpr2`` package (which holds the model files) or onnx/onnxruntime is not installed."""


@dataclass(frozen=True)
class RawRead:
    """One plate as the networks read it: not yet checked against the plate format."""

    text: str
    confidence: float  # mean probability of the characters read (HyperLPR's measure)
    char_confidences: tuple[float, ...]
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in the image
    detection: float  # the SSD's score for the box


@dataclass(frozen=True)
class _Prior:
    min_size: float
    max_size: Optional[float]
    aspect_ratios: tuple[float, ...]
    variances: tuple[float, float, float, float]
    feature: str  # the blob whose height x width sets the grid


def model_folder() -> Path:
    """The ``models`` folder of the installed hyperlpr2 package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelsMissing(f"the {PACKAGE} package is not installed (pip install {PACKAGE}==2.0.0)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    if not (folder / "dnn").is_dir():
        raise ModelsMissing(f"{folder / 'dnn'} is missing")
    return folder


def characters(folder: Path) -> list[str]:
    """HyperLPR's CTC alphabet (table_chs.py), read without importing the package."""
    spec = importlib.util.spec_from_file_location("_hyperlpr2_table", folder.parent / "table_chs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.chars)


def _priors(prototxt: str) -> list[_Prior]:
    priors = []
    for layer in caffe.parse_prototxt(prototxt).get("layer", []):
        if layer.get("type") != ["PriorBox"]:
            continue
        p = layer["prior_box_param"][0]
        ratios = [1.0]
        for ratio in p.get("aspect_ratio", []):
            for r in (ratio, 1.0 / ratio) if p.get("flip", [True])[0] else (ratio,):
                if all(abs(r - known) > 1e-6 for known in ratios):
                    ratios.append(r)
        priors.append(_Prior(float(p["min_size"][0]), float(p["max_size"][0]) if "max_size" in p else None,
                             tuple(ratios), tuple(float(v) for v in p["variance"]), layer["bottom"][0]))
    return priors


def prior_boxes(prior: _Prior, feature_hw: tuple[int, int], image_hw: tuple[int, int]) -> np.ndarray:
    """Caffe SSD's PriorBox (offset 0.5, no clip): ``(cells * boxes, 4)`` normalised x1, y1, x2, y2."""
    (fh, fw), (ih, iw) = feature_hw, image_hw
    sizes = [(prior.min_size, prior.min_size)]
    if prior.max_size:
        side = math.sqrt(prior.min_size * prior.max_size)
        sizes.append((side, side))
    sizes += [(prior.min_size * math.sqrt(r), prior.min_size / math.sqrt(r)) for r in prior.aspect_ratios[1:]]
    ys, xs = np.meshgrid((np.arange(fh) + 0.5) * ih / fh, (np.arange(fw) + 0.5) * iw / fw, indexing="ij")
    centres = np.stack([xs.ravel(), ys.ravel()], axis=1)[:, None, :]  # cells, 1, 2
    half = np.array(sizes)[None, :, :] / 2  # 1, boxes, 2
    boxes = np.concatenate([centres - half, centres + half], axis=2) / np.array([iw, ih, iw, ih])
    return boxes.reshape(-1, 4)


def decode(loc: np.ndarray, priors: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """CENTER_SIZE decoding of the SSD's offsets against its priors (normalised x1, y1, x2, y2)."""
    size = priors[:, 2:] - priors[:, :2]
    centre = (priors[:, 2:] + priors[:, :2]) / 2 + loc[:, :2] * variances[:, :2] * size
    half = np.exp(np.clip(loc[:, 2:] * variances[:, 2:], -10, 10)) * size / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> list[int]:
    """Indexes kept by greedy non-maximum suppression, best score first."""
    order, keep = list(np.argsort(-scores)), []
    areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    while order:
        best, order = order[0], order[1:]
        keep.append(int(best))
        if not order:
            break
        rest = np.array(order)
        lo, hi = np.maximum(boxes[best, :2], boxes[rest, :2]), np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        overlap = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = [i for i, o in zip(order, overlap) if o <= iou]
    return keep


def ctc_decode(probabilities: np.ndarray, alphabet: Sequence[str]) -> tuple[str, tuple[float, ...]]:
    """Greedy CTC over ``(steps, classes)``; index ``len(alphabet)`` and above are blanks.

    >>> p = np.full((4, 3), 0.01); p[[0, 1, 3], [0, 0, 1]] = 0.98; p[2, 2] = 0.98
    >>> ctc_decode(p, ["A", "B"])
    ('AB', (0.98, 0.98))
    """
    best = probabilities.argmax(axis=1)
    text, confidences = [], []
    for step, index in enumerate(best):
        if index < len(alphabet) and (step == 0 or index != best[step - 1]):
            text.append(alphabet[index])
            confidences.append(round(float(probabilities[step, index]), 4))
    return "".join(text), tuple(confidences)


def _blob(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HyperLPR's refine-net input: resized to ``size`` (w, h), (x - 127.5) / 128, NCHW."""
    resized = cv2.resize(image, size).astype(np.float32)
    return ((resized - 127.5) * 0.0078125).transpose(2, 0, 1)[None]


class HyperLpr:
    """The three networks in onnxruntime sessions, one thread each (the detector owns the cores)."""

    def __init__(self, folder: Optional[Path] = None, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - an install mistake
            raise ModelsMissing("onnxruntime is not installed") from exc
        self.folder = folder or model_folder()
        dnn = self.folder / "dnn"
        self.alphabet = characters(self.folder)
        ssd_text = (dnn / "mininet_ssd_v1.prototxt").read_text(encoding="utf-8")
        self.priors = _priors(ssd_text)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3

        def session(stem: str, outputs: list[str], shapes: Sequence[str] = ()) -> "ort.InferenceSession":
            model = caffe.load(dnn, stem, outputs, shapes)
            return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

        self.ssd = session("mininet_ssd_v1", [SSD_LOC, SSD_CONF], [p.feature for p in self.priors])
        self.refine = session("refinenet", ["conv6-3"])
        self.recognise = session("SegmenationFree-Inception", ["prob"])

    # -- detection ----------------------------------------------------------------------------------
    def detect(self, image: np.ndarray, threshold: float) -> list[tuple[tuple[int, int, int, int], float]]:
        """Plate boxes (x1, y1, x2, y2 in ``image``) with the SSD's score, best first."""
        height, width = image.shape[:2]
        scale = min(1.0, MAX_SIDE / max(height, width))
        small = cv2.resize(image, (round(width * scale), round(height * scale)),
                           interpolation=cv2.INTER_AREA) if scale < 1 else image
        rgb = small[:, :, ::-1].astype(np.float32) / 255.0
        tensor = ((rgb - SSD_MEAN) / SSD_STD).astype(np.float32).transpose(2, 0, 1)[None]
        loc, conf, *shapes = self.ssd.run(None, {"data": tensor})
        image_hw = small.shape[:2]
        priors = [(prior_boxes(p, (int(s[2]), int(s[3])), image_hw), p.variances) for p, s in zip(self.priors, shapes)]
        boxes_n = np.concatenate([b for b, _ in priors])
        variances = np.concatenate([np.tile(v, (len(b), 1)) for b, v in priors])
        boxes = decode(loc.reshape(-1, 4), boxes_n, variances)
        scores = conf.reshape(-1, 2)[:, 1]
        candidates = np.flatnonzero(scores > threshold)
        found = []
        for i in nms(boxes[candidates], scores[candidates]):
            x1, y1, x2, y2 = boxes[candidates[i]] * [width, height, width, height]
            box = (max(int(x1), 0), max(int(y1), 0), min(int(x2), width - 1), min(int(y2), height - 1))
            if box[2] - box[0] >= 8 and box[3] - box[1] >= 4:
                found.append((box, float(scores[candidates[i]])))
        return found

    # -- reading one box ----------------------------------------------------------------------------
    def read_box(self, image: np.ndarray, box: tuple[int, int, int, int]) -> tuple[str, tuple[float, ...]]:
        """The characters in one plate box: loose crop, two corner refinements, CTC recognition."""
        crop = _loose_crop(image, box, 120 / 48)
        if crop.shape[0] < 4 or crop.shape[1] < 8:
            return "", ()
        plate = self._finetune(crop)
        tall = cv2.resize(plate, (160, 40)).transpose(1, 0, 2).astype(np.float32) / 255.0  # 160 x 40 x 3
        probabilities = self.recognise.run(None, {"data": tall.transpose(2, 0, 1)[None]})[0][0]
        steps = np.squeeze(probabilities[:, 2:, :], axis=2).T  # (steps, classes), first two steps dropped
        return ctc_decode(steps, self.alphabet)

    def _corners(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        out = self.refine.run(None, {"data": _blob(image, (120, 48))})[0]
        return (out.reshape(4, 2) * np.array([width, height])).astype(np.int_)

    def _finetune(self, crop: np.ndarray, scale: float = 3.0) -> np.ndarray:
        corners = self._corners(crop)
        centre_x, centre_y, half_w, half_h = 64, 24, 32, 12
        target = np.array([[centre_x - half_w, centre_y - half_h], [centre_x + half_w, centre_y - half_h],
                           [centre_x + half_w, centre_y + half_h], [centre_x - half_w, centre_y + half_h]],
                          np.float32) * scale
        matrix, _ = cv2.estimateAffinePartial2D(corners.astype(np.float32), target, None)
        if matrix is None:
            matrix = cv2.getAffineTransform(corners[:3].astype(np.float32), target[:3])
        warped = cv2.warpAffine(crop, matrix, (int(120 * scale), int(48 * scale)))
        corners = self._corners(warped).astype(np.float32)
        square = np.array([[0, 0], [136, 0], [136, 36], [0, 36]], np.float32)
        return cv2.warpPerspective(warped, cv2.getPerspectiveTransform(corners, square), (136, 36))


def _loose_crop(image: np.ndarray, box: tuple[int, int, int, int], aspect: float, padding: float = 1.7) -> np.ndarray:
    """HyperLPR's crop around a box: padded by ``padding`` and widened to ``aspect`` (w / h)."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    if (x2 - x1) / max(y2 - y1, 1) > aspect:
        w = int((x2 - x1) * padding)
        h = int(w / aspect)
    else:
        h = int((y2 - y1) * padding)
        w = int(h * aspect)
    return image[max(cy - h // 2, 0):cy + h // 2, max(cx - w // 2, 0):cx + w // 2]


@lru_cache(maxsize=1)
def shared() -> HyperLpr:
    """One engine per process (translating the three models takes about half a second)."""
    return HyperLpr()
