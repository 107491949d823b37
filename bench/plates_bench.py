"""Plate reading on real media: accuracy, character accuracy, false plates, time; voting on video.

Photos: every file of ``plates/plates.tsv`` (a read is exact when it equals any plate listed for
the file), the two parking photos whose plate SOURCES.tsv names, and photos with no Chinese plate
(any plate read there is false).  Time per image includes decoding the file.  Character accuracy
compares the best read to the file's main plate position by position (a missing read scores 0).

Videos: every ``parking/*.mp4``, one frame in ``--every``; reads whose texts differ in at most two
characters are taken as one vehicle and voted with :class:`detector.plates.PlateVote`.

Usage::

    NONSITE_MEDIA=../shared/media .venv/bin/python bench/plates_bench.py [--every 15]
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from detector.plates import PlateRead, PlateReader, PlateVote  # noqa: E402

EXTRA = {"parking/E03_easypr_van_on_pedestrian_area.jpg": "浙AM690M", "parking/E04_easypr_car_across_sidewalk.jpg": "苏ADW072"}
NEGATIVES = ("laundry/A02_NEG_empty_clothesline_pegs.jpg", "ads/B07_shanghai_nanjing_road_signboards.jpg",
             "ads/B04_posters_stuck_on_wall_graffiti.jpg", "dogs/G03_stray_dog_curled_on_paved_sidewalk.png",
             "dog.jpg", "person.jpg", "garbage_bags_pile_sidewalk_amsterdam_01.jpg",
             "vendors/C06_taiwan_nightmarket_stall_row.jpg")


@dataclass
class Case:
    file: str
    main: str  # "" for a photo without a plate
    plates: set[str] = field(default_factory=set)


def cases(media: Path) -> list[Case]:
    found = []
    with open(media / "plates" / "plates.tsv", encoding="utf-8") as table:
        for row in csv.DictReader(table, delimiter="\t"):
            listed = {p.split(":")[-1].strip() for p in row["all_plates_in_image"].split("/")}
            found.append(Case("plates/" + row["file"], row["plate"], listed | {row["plate"]}))
    found += [Case(name, plate, {plate}) for name, plate in EXTRA.items()]
    found += [Case(name, "") for name in NEGATIVES if (media / name).exists()]
    return found


def char_accuracy(read: str, truth: str) -> float:
    """Example:

    >>> char_accuracy("皖A12345", "皖A12346"), char_accuracy("", "皖A12345")
    (0.8571428571428571, 0.0)
    """
    if not truth:
        return 0.0
    return sum(a == b for a, b in zip(read, truth)) / max(len(truth), len(read))


def photos(reader: PlateReader, media: Path) -> None:
    rows, times = [], []
    exact = positives = false = chars = 0.0
    for case in cases(media):
        start = time.perf_counter()
        image = cv2.imdecode(np.fromfile(str(media / case.file), np.uint8), cv2.IMREAD_COLOR)
        reads = reader.read(image)
        times.append(time.perf_counter() - start)
        texts = [r.plate for r in reads]
        wrong = [t for t in texts if t not in case.plates]
        false += len(wrong)
        if case.main:
            positives += 1
            hit = any(t in case.plates for t in texts)
            exact += hit
            best = case.main if case.main in texts else (texts[0] if texts else "")
            chars += char_accuracy(best, case.main)
        verdict = ("ok" if hit else "MISS") if case.main else ("ok" if not texts else "FALSE")
        rows.append((Path(case.file).name[:44], case.main or "-", " ".join(texts) or "-", verdict,
                     f"{1000 * times[-1]:.0f}"))
    print(f"{'file':44} {'plate':9} {'read':28} {'':5} ms")
    for row in rows:
        print(f"{row[0]:44} {row[1]:9} {row[2]:28} {row[3]:5} {row[4]}")
    negatives = sum(1 for c in cases(media) if not c.main)
    print(f"\nexact {int(exact)}/{int(positives)} = {exact / positives:.1%}   character accuracy "
          f"{chars / positives:.1%}   false plates {int(false)} (photos without a plate: {negatives})   "
          f"time/image mean {1000 * np.mean(times):.0f} ms, median {1000 * np.median(times):.0f} ms")


def same_vehicle(a: str, b: str) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b)) <= 2


def videos(reader: PlateReader, media: Path, every: int) -> None:
    for path in sorted((media / "parking").glob("*.mp4")):
        capture = cv2.VideoCapture(str(path))
        groups: list[tuple[str, PlateVote]] = []
        index = sampled = 0
        start = time.perf_counter()
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                sampled += 1
                for read in reader.read(frame):
                    vote = next((v for key, v in groups if same_vehicle(key, read.plate)), None)
                    if vote is None:
                        vote = PlateVote()
                        groups.append((read.plate, vote))
                    vote.add(read, frame)
            index += 1
        capture.release()
        elapsed = time.perf_counter() - start
        print(f"\n{path.name}: {sampled} of {index} frames sampled, {1000 * elapsed / max(sampled, 1):.0f} ms a frame")
        print(f"  {'voted plate':12} {'confidence':>10} {'reads':>6} {'agreeing':>8}  single-frame reads")
        for _, vote in sorted(groups, key=lambda g: -g[1].frames):
            result = vote.result()
            texts = ", ".join(f"{t}x{len(c)}" for t, c in sorted(vote.confidences.items(), key=lambda i: -len(i[1])))
            if result is None:
                print(f"  {'(none)':12} {'':>10} {vote.frames:>6} {'':>8}  {texts}")
            else:
                print(f"  {result.plate:12} {result.confidence:>10.3f} {result.frames:>6} {result.reads:>8}  {texts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--every", type=int, default=15, help="sample one video frame in this many (default 15)")
    parser.add_argument("--threshold", type=float, default=None, help="PlateReader threshold (default its own)")
    args = parser.parse_args()
    media = Path(os.environ.get("NONSITE_MEDIA", PROJECT.parent / "shared" / "media"))
    if not (media / "plates" / "plates.tsv").exists():
        raise SystemExit(f"no plates/plates.tsv under {media}: set NONSITE_MEDIA")
    reader = PlateReader() if args.threshold is None else PlateReader(threshold=args.threshold)
    started = time.perf_counter()
    reader.read(np.zeros((64, 64, 3), np.uint8))  # loads the models
    print(f"models loaded in {time.perf_counter() - started:.2f} s (Caffe -> ONNX in memory, onnxruntime, 1 thread)\n")
    photos(reader, media)
    videos(reader, media, args.every)


if __name__ == "__main__":
    main()
