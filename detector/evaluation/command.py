"""``nonsite eval LABELS.yaml``: run every labelled media file through the detector and score it.

Each file is a camera with the file's zones, played as labelled, through the pipeline ``nonsite
detect-file`` uses (:mod:`detector.evaluation.run`), with the configured model and scenarios; its
events are scored against its labels (:mod:`detector.evaluation.scoring`).  A progress bar on stderr,
one log line per file, the report on stdout: a table, or JSON with ``--json -`` (``--json FILE`` writes
the JSON there as well as the table).  Evidence pictures go to a temporary folder removed at the end
unless ``--evidence DIR`` keeps them.

Example::

    $ nonsite eval bench/quality/labels.yaml --media ../shared/media
    $ nonsite eval bench/quality/labels.yaml --only dogs/ --json - > dogs.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import structlog

from detector.evaluation.labels import LabelsError, MediaLabel, check_scenarios, load_labels
from detector.evaluation.report import Report
from detector.evaluation.run import evaluate_file, playback
from nonsite.config import City
from nonsite.errors import CommandError

log = structlog.get_logger("detector.evaluation")


def media_folder(given: Optional[Path]) -> Path:
    """``--media``, else ``$NONSITE_MEDIA``: the folder the labels' paths are relative to."""
    folder = given or (Path(os.environ["NONSITE_MEDIA"]) if os.environ.get("NONSITE_MEDIA") else None)
    if folder is None:
        raise CommandError("--media: give the media folder the labels' paths are relative to (or set NONSITE_MEDIA)")
    if not folder.is_dir():
        raise CommandError(f"--media: folder not found: {folder}")
    return folder


def chosen(files: list[MediaLabel], only: Optional[list[str]]) -> list[MediaLabel]:
    """The files whose path contains one of ``only`` (all without it); an ``only`` that matches none is an error."""
    if not only:
        return files
    for text in only:
        if not any(text in f.path for f in files):
            raise CommandError(f"--only: no labelled file's path contains {text!r}")
    return [f for f in files if any(text in f.path for text in only)]


def evaluate(args: argparse.Namespace, city: Optional[City]) -> int:
    from tqdm import tqdm

    from detector.cli import load_detector, probe_video
    from nonsite.evidence import EvidenceStore

    assert city is not None
    try:
        labels = load_labels(args.labels)
        check_scenarios(labels, city.scenarios, str(args.labels))
    except LabelsError as exc:
        raise CommandError(str(exc)) from None
    media = media_folder(args.media)
    items = chosen(labels.files, args.only)
    # every file is opened before the long run: a missing or broken one stops it at once
    plays = [playback(item, media, labels.defaults, probe_video) for item in items]
    detector = load_detector(city)
    kept = tempfile.TemporaryDirectory(prefix="nonsite-eval-") if args.evidence is None else None
    store = EvidenceStore(args.evidence or Path(kept.name))
    load_before, began = os.getloadavg(), time.perf_counter()
    results = []
    try:
        with tqdm(total=sum(p.count for p in plays), unit="frame", file=sys.stderr, dynamic_ncols=True) as bar:
            for number, (item, play) in enumerate(zip(items, plays), 1):
                bar.set_description(f"{number}/{len(items)} {Path(item.path).name[:32]}")
                result = evaluate_file(city, item, play, f"q{number:02d}", detector, store, on_frame=bar.update)
                results.append(result)
                log.info("file evaluated", path=item.path, how=play.how, frames=result.frames,
                         inferred=result.inferred, seconds=round(result.run_s, 1),
                         **{s: f"{score.starts}/{score.expected}" for s, score in result.scores.items()})
    finally:
        if kept is not None:
            kept.cleanup()
    report = Report(str(args.labels), results, [s.id for s in city.scenarios if s.enabled],
                    time.perf_counter() - began, load_before, os.getloadavg())
    document = json.dumps(report.as_dict(), ensure_ascii=False, indent=1)
    if args.json is not None and str(args.json) != "-":
        args.json.write_text(document + "\n", encoding="utf-8")
    print(document if str(args.json) == "-" else report.text(), flush=True)
    return 0
