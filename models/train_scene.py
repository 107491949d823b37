"""Train the generic scene heads from the labelled crops of the shared real photos, reproducibly, and print their
cross-validated precision and recall per scenario.

    NONSITE_WEIGHTS=../shared/models/yolov8n_int8.tflite NONSITE_MEDIA=../shared/media \\
        .venv/bin/python models/train_scene.py [--out models/scene_heads.npz] [--check-only]

1. Every box of ``models/scene_labels.yaml`` is cut from its photo (a video: its first frame) and embedded by
   the embedding extractor (``NONSITE_EMBEDDER``, or its file name beside ``NONSITE_WEIGHTS``); each box also
   gives ``AUGMENT`` jittered copies (shifted and scaled by up to 10 %, half of them mirrored; seeded).
2. Per scenario, a head is a logistic regression (scikit-learn, classes weighted by their counts) of "this
   scenario's crop" against every other crop, on L2-normalised embeddings.
3. Cross-validation holds out one place at a time (a photo, or a ``group`` of it), with its jittered copies,
   and scores the held-out boxes: recall on the scenario's boxes, false alarms on everything else.
4. The heads, trained on everything, are written with what they were trained on (label counts, the labels
   file's sha256, the embedder's, the cross-validated figures).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.classify.heads import LinearHead, embedding, save_heads  # noqa: E402
from detector.classify.spots import fit_head, figures  # noqa: E402
from detector.classify.tflite import ImageModel, beside_weights  # noqa: E402

HERE = Path(__file__).resolve().parent
SCENARIOS = ("material_piling", "street_drying", "illegal_ads", "mobile_vendor", "road_occupation")
AUGMENT = 6
EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


@dataclass(frozen=True)
class Sample:
    features: np.ndarray
    label: str
    group: str
    original: bool  # the labelled box itself, not a jittered copy


def read_picture(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov"):
        capture = cv2.VideoCapture(str(path))
        ok, image = capture.read()
        capture.release()
        if not ok:
            raise SystemExit(f"{path}: no first frame")
        return image
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"{path}: not a readable image")
    return image


def jittered(box: list[float], rng: np.random.Generator) -> tuple[float, ...]:
    x1, y1, x2, y2 = box
    width, height = x2 - x1, y2 - y1
    scale = rng.uniform(0.9, 1.1)
    cx, cy = (x1 + x2) / 2 + rng.uniform(-0.1, 0.1) * width, (y1 + y2) / 2 + rng.uniform(-0.1, 0.1) * height
    half_w, half_h = width * scale / 2, height * scale / 2
    return (max(0.0, cx - half_w), max(0.0, cy - half_h), min(1.0, cx + half_w), min(1.0, cy + half_h))


def samples(labels: list[dict], media: Path, embedder: ImageModel) -> list[Sample]:
    rng = np.random.default_rng(20260501)
    pictures: dict[str, np.ndarray] = {}
    made = []
    for entry in labels:
        image = pictures.setdefault(entry["file"], read_picture(media / entry["file"]))
        group = entry.get("group", entry["file"])
        made.append(Sample(embedding(embedder, image, tuple(entry["box"])), entry["label"], group, True))
        for copy in range(AUGMENT):
            picture = image[:, ::-1] if copy % 2 else image
            box = jittered(entry["box"], rng)
            if copy % 2:
                box = (1 - box[2], box[1], 1 - box[0], box[3])
            made.append(Sample(embedding(embedder, np.ascontiguousarray(picture), box), entry["label"], group, False))
    return made


def held_out_probabilities(all_samples: list[Sample], scenario: str) -> np.ndarray:
    """Each original box's probability from a head trained without its place (NaN for the jittered copies)."""
    features = np.array([s.features for s in all_samples])
    present = np.array([s.label == scenario for s in all_samples])
    groups = np.array([s.group for s in all_samples])
    result = np.full(len(all_samples), np.nan)
    for group in sorted(set(groups)):
        train = groups != group
        if not present[train].any():
            continue
        head = fit_head(features[train], present[train], scenario)
        for index in np.flatnonzero(~train):
            if all_samples[index].original:
                result[index] = head.probability(features[index])
    return result


def report_line(scenario: str, all_samples: list[Sample], probabilities: np.ndarray) -> tuple[str, dict]:
    present = np.array([s.label == scenario for s in all_samples])
    originals = np.array([s.original for s in all_samples])
    places = sorted({s.group for s, p in zip(all_samples, present) if p and s.original})
    _, precision, recall = figures(probabilities, present)
    known = ~np.isnan(probabilities)
    false_alarms = int(((probabilities >= 0.5) & known & ~present).sum())
    negatives = int((known & ~present).sum())
    missed = int((originals & present & ~known).sum())
    figures_of = {"boxes": int((present & originals).sum()), "places": len(places), "cv_precision": _round(precision),
                  "cv_recall": _round(recall), "cv_false_alarms": false_alarms, "cv_negatives": negatives}
    line = (f"{scenario:<16} {figures_of['boxes']:>5} {len(places):>6}   {_shown(precision):>9} {_shown(recall):>6}"
            f"   {false_alarms:>3} of {negatives:<4}")
    if missed:
        line += f"  ({missed} boxes of a lone place not scored)"
    return line, figures_of


def _round(value: float) -> Optional[float]:
    return None if np.isnan(value) else round(float(value), 3)


def _shown(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.2f}"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=Path, default=HERE / "scene_labels.yaml")
    parser.add_argument("--out", type=Path, default=HERE / "scene_heads.npz")
    parser.add_argument("--media", type=Path, default=os.environ.get("NONSITE_MEDIA"))
    parser.add_argument("--check-only", action="store_true", help="cross-validate, write nothing")
    args = parser.parse_args(argv)
    if args.media is None:
        raise SystemExit("set NONSITE_MEDIA (or --media) to the shared media folder")
    embedder = ImageModel.load(beside_weights(os.environ.get("NONSITE_EMBEDDER", EMBEDDER),
                                              os.environ.get("NONSITE_WEIGHTS", "")))
    labels = yaml.safe_load(args.labels.read_text(encoding="utf-8"))["crops"]
    all_samples = samples(labels, args.media, embedder)
    print(f"{len(labels)} labelled boxes ({len(all_samples)} crops with the jittered copies), "
          f"embedder {embedder.path.name} ({embedder.short_hash}); held out one place at a time")
    print(f"{'scenario':<16} {'boxes':>5} {'places':>6}   {'precision':>9} {'recall':>6}   false alarms")
    labels_sha = hashlib.sha256(args.labels.read_bytes()).hexdigest()
    heads: dict[str, LinearHead] = {}
    features = np.array([s.features for s in all_samples])
    for scenario in SCENARIOS:
        line, cv = report_line(scenario, all_samples, held_out_probabilities(all_samples, scenario))
        print(line)
        head = fit_head(features, [s.label == scenario for s in all_samples], scenario)
        about = {**cv, "labels_sha256": labels_sha, "embedder_sha256": embedder.sha256, "augment": AUGMENT,
                 "source": "models/train_scene.py"}
        heads[scenario] = LinearHead(scenario, head.coef, head.intercept, about)
    if not args.check_only:
        save_heads(args.out, heads)
        print(f"wrote {args.out} ({args.out.stat().st_size} bytes): "
              + ", ".join(f"{s} {h.model_hash}" for s, h in heads.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
