"""Measure the second look on real crops: precision and recall of each scenario's candidates with and without it,
and its cost per crop.

Reads the candidate crops of ``models/second_look_crops.yaml`` (boxes the detector found in the shared media,
each with what it really is), each scenario's ``second_look`` from ``configs/scenarios.yaml``, and the
classifier named by ``NONSITE_CLASSIFIER`` or beside ``NONSITE_WEIGHTS``::

    NONSITE_WEIGHTS=../shared/models/yolov8n_int8.tflite NONSITE_MEDIA=../shared/media \\
        .venv/bin/python models/measure_second_look.py

A candidate is a crop of a class the scenario watches (or rescues); it is right when the crop is what the
scenario is about (stray_dog: a dog; mobile_vendor: a vendor's stall or cart; road_occupation: a shop's seating
or goods on the sidewalk).  Zones and companions are left out: this measures the crops, not the rules.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.classify.second_look import SecondLook  # noqa: E402
from detector.classify.tflite import beside_weights  # noqa: E402
from nonsite.config import Scenario, ScenariosFile  # noqa: E402

HERE = Path(__file__).resolve().parent
TRUTH = {"stray_dog": "dog", "mobile_vendor": "vendor", "road_occupation": "seating"}
CANVAS = (720, 1280)


def crop_frame(media: Path, entry: dict) -> np.ndarray:
    """The frame a crop entry was cut from: a still (maybe shrunk onto a grey canvas) or a video's frame."""
    path = media / entry["file"]
    if "at_s" in entry:
        capture = cv2.VideoCapture(str(path))
        capture.set(cv2.CAP_PROP_POS_MSEC, float(entry["at_s"]) * 1000)
        ok, image = capture.read()
        capture.release()
        if not ok:
            raise SystemExit(f"{path}: no frame at {entry['at_s']} s")
        return image
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"{path}: not a readable image")
    if "scale" in entry:
        return on_canvas(image, float(entry["scale"]))
    return image


def on_canvas(image: np.ndarray, scale: float) -> np.ndarray:
    """The picture shrunk by ``scale`` at the top left of a grey 1280x720 frame (a far camera's view)."""
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((*CANVAS, 3), 110, np.uint8)
    height, width = min(small.shape[0], CANVAS[0]), min(small.shape[1], CANVAS[1])
    canvas[:height, :width] = small[:height, :width]
    return canvas


@dataclass
class Counts:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    def add(self, predicted: bool, actual: bool) -> None:
        self.true_positives += predicted and actual
        self.false_positives += predicted and not actual
        self.false_negatives += actual and not predicted

    def figures(self) -> str:
        alarms = self.true_positives + self.false_positives
        real = self.true_positives + self.false_negatives
        precision = f"{self.true_positives / alarms:.2f}" if alarms else "-"
        recall = f"{self.true_positives / real:.2f}" if real else "-"
        return f"{self.true_positives}/{self.false_positives}/{self.false_negatives}  P {precision:>4} R {recall:>4}"


def candidate(scenario: Scenario, class_name: str, look: Optional[SecondLook], scores: np.ndarray) -> bool:
    """Is this crop a candidate of the scenario: without the look (``look`` None), or with it."""
    rule = look.rule(scenario.id) if look is not None else None
    own = class_name in scenario.classes
    if rule is None:
        return own
    if not own and class_name not in rule.rescue_classes:
        return False
    return look.judge(rule, scores).agrees if rule.needs_look(class_name) else True


def measure(crops: list[dict], media: Path, scenarios: list[Scenario], look: SecondLook) -> tuple[str, float]:
    """The table, and the milliseconds per crop the classifier took."""
    without = {s.id: Counts() for s in scenarios}
    with_look = {s.id: Counts() for s in scenarios}
    spent, looked = 0.0, 0
    for entry in crops:
        image = crop_frame(media, entry)
        started = time.perf_counter()
        scores = look.scores(image, tuple(entry["box"]))
        spent, looked = spent + time.perf_counter() - started, looked + 1
        for scenario in scenarios:
            actual = entry["is"] == TRUTH[scenario.id]
            without[scenario.id].add(candidate(scenario, entry["class"], None, scores), actual)
            with_look[scenario.id].add(candidate(scenario, entry["class"], look, scores), actual)
    lines = [f"{'scenario':<16} {'mode':<8} {'without (TP/FP/FN)':<28} with the second look"]
    for scenario in scenarios:
        rule = scenario.second_look
        lines.append(f"{scenario.id:<16} {rule.mode if rule else 'off':<8} {without[scenario.id].figures():<28} "
                     f"{with_look[scenario.id].figures()}")
    return "\n".join(lines), 1000 * spent / max(1, looked)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops", type=Path, default=HERE / "second_look_crops.yaml")
    parser.add_argument("--scenarios", type=Path, default=HERE.parent / "configs" / "scenarios.yaml")
    parser.add_argument("--media", type=Path, default=os.environ.get("NONSITE_MEDIA"))
    args = parser.parse_args(argv)
    weights = os.environ.get("NONSITE_WEIGHTS", "")
    classifier = beside_weights(os.environ.get("NONSITE_CLASSIFIER", "mobilenet_v2_1.0_224_quant.tflite"), weights)
    if args.media is None:
        raise SystemExit("set NONSITE_MEDIA (or --media) to the shared media folder")
    scenarios = [s for s in ScenariosFile.model_validate(yaml.safe_load(args.scenarios.read_text())).scenarios
                 if s.id in TRUTH]
    look = SecondLook.load(classifier, classifier.parent / "imagenet_labels.txt", scenarios)
    crops = yaml.safe_load(args.crops.read_text(encoding="utf-8"))["crops"]
    table, per_crop_ms = measure(crops, args.media, scenarios, look)
    print(f"{len(crops)} candidate crops, classifier {classifier.name} ({look.model.short_hash})")
    print(table)
    print(f"cost: {per_crop_ms:.1f} ms a crop (crop, resize, classify; one thread)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
