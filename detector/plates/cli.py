"""``nonsite plates read FILE...``: one JSON line per image on stdout, one line per bad file on stderr.

Example::

    $ nonsite plates read plates/easypr_01_A88731.jpg
    {"file": "plates/easypr_01_A88731.jpg", "plates": [{"plate": "京A88731", "confidence": 0.98, "box": [...]}]}
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from nonsite.errors import CommandError

EXIT_FAILED = 1


def load_image(path: Path) -> np.ndarray:
    """The image as BGR, or OSError naming why not (missing, a folder, not an image)."""
    if not path.exists():
        raise OSError("no such file")
    if not path.is_file():
        raise OSError("not a file")
    image = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError("not an image OpenCV can decode")
    return image


def read(args: argparse.Namespace, city: object = None) -> int:
    from detector.plates.hyperlpr import ModelsMissing
    from detector.plates.reader import THRESHOLD, PlateReader

    reader = PlateReader(threshold=THRESHOLD if args.threshold is None else args.threshold)
    failed = 0
    for path in args.files:
        try:
            image = load_image(path)
        except OSError as exc:
            print(f"nonsite: cannot read {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        try:
            plates = reader.read(image)
        except ModelsMissing as exc:
            raise CommandError(f"plate models: {exc}") from exc
        print(json.dumps({"file": str(path), "plates": [p.as_json() for p in plates]}, ensure_ascii=False),
              flush=True)
    return EXIT_FAILED if failed else 0
