"""Linear heads on crop embeddings: "is the scenario's thing in this crop", as a probability.

The embedding extractor (MobileNet v1 without its classifier) turns a zone's crop into 1,024 values; a head
is a logistic regression on them, L2-normalised: ``p = sigmoid(w . e + b)``.  Heads are small (1,024
coefficients) and saved as ``.npz`` with what they were trained on; the generic heads of every scenario
live in one file (``models/scene_heads.npz``, made by ``models/train_scene.py``), a spot's head in its own
(:mod:`detector.classify.spots`).

Example::

    >>> head = LinearHead("material_piling", np.ones(4) / 2, -1.0)
    >>> round(head.probability(np.array([1.0, 1.0, 0.0, 0.0])), 3)  # 0.5 * 1.414 - 1
    0.427
    >>> len(head.model_hash)
    12
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from detector.classify.tflite import Box, ImageModel, box_pixels, cut


def embedding(model: ImageModel, image: np.ndarray, box: Box) -> np.ndarray:
    """The crop's embedding (``box`` in the frame, stretched to the model's input), L2-normalised."""
    values = model.run(cut(image, box_pixels(box, image.shape[:2])))
    return unit(values)


def unit(values: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(values))
    return (values / norm if norm > 0 else values).astype(np.float32)


@dataclass(frozen=True)
class LinearHead:
    """One head: the scenario it answers for, its weights and bias, and what it was trained on."""

    scenario: str
    coef: np.ndarray
    intercept: float
    about: Mapping[str, object] = field(default_factory=dict)  # label counts, cross-validated figures, source

    @property
    def model_hash(self) -> str:
        """12 hex digits of the sha256 of the weights: the head's version, carried with what it decided."""
        digest = hashlib.sha256(np.asarray(self.coef, np.float32).tobytes())
        digest.update(np.float32(self.intercept).tobytes())
        return digest.hexdigest()[:12]

    def probability(self, features: np.ndarray) -> float:
        score = float(np.dot(self.coef, unit(features)) + self.intercept)
        return float(1.0 / (1.0 + np.exp(-score)))

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {f"{prefix}coef": np.asarray(self.coef, np.float32), f"{prefix}intercept": np.float32(self.intercept),
                f"{prefix}about": np.array(json.dumps(dict(self.about), sort_keys=True))}

    @classmethod
    def from_arrays(cls, scenario: str, arrays: Mapping[str, np.ndarray], prefix: str = "") -> "LinearHead":
        return cls(scenario, np.asarray(arrays[f"{prefix}coef"], np.float32), float(arrays[f"{prefix}intercept"]),
                   json.loads(str(arrays[f"{prefix}about"])))


def save_heads(path: Path, heads: Mapping[str, LinearHead]) -> None:
    """Every head in one ``.npz`` (arrays ``<scenario>/coef``, ``/intercept``, ``/about``)."""
    arrays: dict[str, np.ndarray] = {}
    for scenario, head in sorted(heads.items()):
        arrays.update(head.arrays(f"{scenario}/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        np.savez_compressed(file, **arrays)


def load_heads(path: Path) -> dict[str, LinearHead]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    scenarios = sorted({name.split("/")[0] for name in arrays})
    return {s: LinearHead.from_arrays(s, arrays, f"{s}/") for s in scenarios}
