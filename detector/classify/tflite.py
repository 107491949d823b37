"""A quantised TFLite image model run on crops of a frame (``ai-edge-litert``), and how a crop is cut.

Both shared models take one 224x224 RGB uint8 picture: the ImageNet classifier returns 1,001 scores, the
embedding extractor 1,024 values.  :class:`ImageModel` feeds a crop and returns the output dequantised.
Frames are BGR (OpenCV); crops are converted to RGB here.

Example::

    >>> square_around((0.0, 0.0, 0.1, 0.1), (1000, 1000), margin=0.5)
    (0, 0, 200, 200)
    >>> zone_box(((0.1, 0.2), (0.5, 0.2), (0.3, 0.9)))
    (0.1, 0.2, 0.5, 0.9)
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from nonsite.crops import Box, Pixels, box_pixels, cut, zone_box  # noqa: F401  (one cut for detector and web)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def square_around(box: Box, shape: tuple[int, int], margin: float = 0.15) -> Pixels:
    """The pixel square centred on ``box``, its side the box's longer side grown by ``margin`` on each
    side, shifted (then clipped) to stay inside the frame: the object with some of what stands around it,
    not stretched."""
    height, width = shape
    x1, y1, x2, y2 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    side = min(max(x2 - x1, y2 - y1) * (1 + 2 * margin), float(max(width, height)))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(round(min(max(cx - side / 2, 0.0), max(width - side, 0.0))))
    top = int(round(min(max(cy - side / 2, 0.0), max(height - side, 0.0))))
    return left, top, min(width, left + int(round(side))), min(height, top + int(round(side)))


@dataclass
class ImageModel:
    """One TFLite model with a uint8 image input; :meth:`run` takes a BGR crop of any size."""

    path: Path
    interpreter: object
    size: tuple[int, int]  # (h, w) of the input
    sha256: str

    @classmethod
    def load(cls, path: str | Path, threads: int = 1) -> "ImageModel":
        from ai_edge_litert.interpreter import Interpreter

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: model file not found")
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
        details = interpreter.get_input_details()[0]
        if details["dtype"] != np.uint8 or len(details["shape"]) != 4:
            raise ValueError(f"{path}: expected a uint8 image input (1, h, w, 3), got {details['dtype']} "
                             f"{list(details['shape'])}")
        return cls(path, interpreter, (int(details["shape"][1]), int(details["shape"][2])), file_sha256(path))

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]

    def run(self, crop_bgr: np.ndarray) -> np.ndarray:
        """The model's single output for the crop (resized to the input, RGB), dequantised, flattened."""
        height, width = self.size
        resized = cv2.resize(crop_bgr, (width, height), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        interpreter = self.interpreter
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], rgb[None, ...])
        interpreter.invoke()
        output = interpreter.get_output_details()[0]
        scale, zero = output["quantization"]
        raw = interpreter.get_tensor(output["index"]).reshape(-1).astype(np.float32)
        return (raw - zero) * scale if scale else raw


def beside_weights(name: str, weights: str, resolve=Path) -> Path:
    """Where a configured model file is: a bare file name (no folder) beside the detector's weights file, so
    a machine's models live in one folder named once (``NONSITE_WEIGHTS``); any other path through
    ``resolve`` (the config's own rule for relative paths)."""
    if Path(name).name == name and Path(weights).parent != Path("."):
        return resolve(weights).parent / name
    return resolve(name)


PROJECT = Path(__file__).resolve().parents[2]


def project_path(path: str) -> Path:
    """A configured path: absolute as is, relative to the project folder (where ``models/`` is)."""
    return Path(path) if Path(path).is_absolute() else PROJECT / path
