"""The one console command, ``nonsite``, and its subcommands.

Each subcommand's work lives with its stage (``detector/``, ``stream/``); this module only parses
arguments, loads the configuration, and turns known failures into one line and an exit code:
2 for a configuration mistake, 1 for a missing dependency or a failed run.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Callable, Optional

import structlog

from nonsite.config import ConfigError, City, default_config_dir, load_city, unwatched_scenarios
from nonsite.errors import CommandError, KafkaSetupError
from nonsite.logs import setup_logging

log = structlog.get_logger("nonsite.cli")

EXIT_CONFIG = 2
EXIT_FAILED = 1


def _handler(target: str) -> Callable[[argparse.Namespace, Optional[City]], int]:
    """``"module:function"`` resolved lazily so `nonsite kafka` does not import torch."""
    module, function = target.split(":")

    def run(args: argparse.Namespace, city: Optional[City]) -> int:
        return getattr(importlib.import_module(module), function)(args, city)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nonsite", description="非现场执法 — camera-based street-order enforcement")
    parser.add_argument("--config", type=Path, default=None,
                        help="configuration folder (default: $NONSITE_CONFIG or ./configs)")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    kafka = commands.add_parser("kafka", help="run a local Apache Kafka (KRaft) from its Maven jars")
    kafka_commands = kafka.add_subparsers(dest="kafka_command", required=True, metavar="ACTION")
    for name, text in (("start", "start (and format) the local cluster, create the topics"),
                       ("stop", "stop the local cluster"), ("status", "show whether it answers")):
        sub = kafka_commands.add_parser(name, help=text)
        sub.add_argument("--data-dir", type=Path, default=None, help="storage folder (default var/kafka)")
        if name == "start":
            sub.add_argument("--nodes", type=int, choices=(1, 3), default=1)
            sub.add_argument("--port", type=int, default=9092, help="first broker port (default 9092)")
        sub.set_defaults(run=_handler("nonsite.devtools.kafka_cli:" + name), needs_config=name == "start")
    topics = kafka_commands.add_parser("topics", help="create every topic with its lifecycle and replication "
                                                      "(kafka.bootstrap), or --check them")
    topics.add_argument("--check", action="store_true",
                        help="change nothing: print each topic's actual and wanted settings, exit 3 if any differ")
    topics.add_argument("--shorten-retention", action="store_true",
                        help="also shorten the life of kept records (case events, feedback, tasks, incidents) "
                             "to kafka.retention.legal_years; refused without it")
    topics.set_defaults(run=_handler("nonsite.devtools.kafka_cli:topics"), needs_config=True)

    check = commands.add_parser("config", help="validate the configuration folder and summarise it")
    check.set_defaults(run=_handler("nonsite.cli:config_check"), needs_config=True)

    password = commands.add_parser("hash-password", help="hash a password for grids.yaml credentials")
    password.add_argument("--password", default=None, help="read from standard input when omitted")
    password.set_defaults(run=_handler("nonsite.cli:hash_password_command"), needs_config=False)

    detect = commands.add_parser("detect", help="run every enabled camera: frames -> violation events on Kafka")
    detect.add_argument("--camera", action="append", default=None, help="only this camera id (repeatable)")
    detect.add_argument("--once", action="store_true", help="stop when every file source has ended")
    detect.add_argument("--metrics-port", type=int, default=None)
    detect.add_argument("--group", default=None, help="share the cameras with the other detectors of this Kafka "
                                                      "consumer group (default detector.sharing.group)")
    detect.add_argument("--spool-dir", type=Path, default=None, help="its own spool (default detector.spool_dir)")
    detect.set_defaults(run=_handler("detector.cli:detect"), needs_config=True)

    detect_file = commands.add_parser("detect-file", help="process one video offline and print its events")
    detect_file.add_argument("video", type=Path)
    detect_file.add_argument("--camera", required=True, help="camera id whose zones apply")
    detect_file.add_argument("--annotated", type=Path, default=None, help="write an annotated video here")
    detect_file.add_argument("--publish", action="store_true", help="also publish the events to Kafka")
    when = detect_file.add_mutually_exclusive_group()
    when.add_argument("--start-time", default="now", metavar="WHEN",
                      help="time of the video's first frame: now (default), mtime (the file's modification time) "
                           "or ISO 8601 with its offset, e.g. 2026-05-01T08:00:00+08:00")
    when.add_argument("--start-epoch", type=float, default=None, help="the same in epoch seconds")
    detect_file.set_defaults(run=_handler("detector.cli:detect_file"), needs_config=True)

    quality = commands.add_parser("eval", help="quality benchmark: labelled media through the detector, "
                                               "per scenario TP/FP/FN, precision, recall (docs/quality.md)")
    quality.add_argument("labels", type=Path, help="labels file, e.g. bench/quality/labels.yaml")
    quality.add_argument("--media", type=Path, default=None,
                         help="folder the labels' paths are relative to (default $NONSITE_MEDIA)")
    quality.add_argument("--only", action="append", default=None, metavar="TEXT",
                         help="only the files whose path contains TEXT (repeatable)")
    quality.add_argument("--json", type=Path, default=None, metavar="FILE",
                         help="also write the report as one JSON document to FILE (- : on stdout, for the table)")
    quality.add_argument("--evidence", type=Path, default=None,
                         help="keep the evidence pictures in this folder (default: a temporary one, removed)")
    quality.set_defaults(run=_handler("detector.evaluation.command:evaluate"), needs_config=True)

    evidence = commands.add_parser("evidence", help="evidence store tools")
    evidence_commands = evidence.add_subparsers(dest="evidence_command", required=True, metavar="ACTION")
    verify = evidence_commands.add_parser("verify", help="check evidence files against their events' sha256")
    verify.add_argument("events", type=Path, help="JSON-lines file of detection events")
    verify.add_argument("--store", type=Path, default=None, help="evidence folder (default from config)")
    verify.set_defaults(run=_handler("detector.cli:evidence_verify"), needs_config=True)
    purge = evidence_commands.add_parser("purge", help="delete the evidence files of cases closed more than "
                                                       "history.evidence_retention_days ago (not those on hold)")
    purge.add_argument("--dry-run", action="store_true", help="list what would be deleted, change nothing")
    purge.add_argument("--no-sync", action="store_true",
                       help="decide on what the database holds now, without reading the topics first")
    purge.set_defaults(run=_handler("web.cli:evidence_purge"), needs_config=True)

    worker = commands.add_parser("worker", help="run the stream processor (Faust worker) and its web server")
    worker.add_argument("--web-port", type=int, default=None)
    worker.add_argument("--data-dir", type=Path, default=None)
    worker.set_defaults(run=_handler("stream.cli:worker"), needs_config=True)

    report = commands.add_parser("report", help="closure statistics from the system of record (as the web reports)")
    report.add_argument("--from", dest="date_from", default=None, help="first day, YYYY-MM-DD (local time)")
    report.add_argument("--to", dest="date_to", default=None, help="last day, YYYY-MM-DD")
    report.add_argument("--by", choices=("scenario", "grid", "officer", "camera"), default="scenario")
    report.add_argument("--csv", action="store_true")
    report.add_argument("--no-sync", action="store_true",
                        help="report what the database holds now, without reading the topics first")
    report.set_defaults(run=_handler("web.cli:report"), needs_config=True)

    web = commands.add_parser("web", help="serve the alert wall, officer app and reports (JSON API + pages)")
    web.add_argument("--host", default=None, help="listen address (default web.host in nonsite.yaml)")
    web.add_argument("--port", type=int, default=None, help="listen port (default web.port in nonsite.yaml)")
    web.set_defaults(run=_handler("web.cli:serve"), needs_config=True)

    plates = commands.add_parser("plates", help="number plate tools")
    plates_commands = plates.add_subparsers(dest="plates_command", required=True, metavar="ACTION")
    plates_read = plates_commands.add_parser("read", help="read Chinese plates in images: one JSON line per file")
    plates_read.add_argument("files", type=Path, nargs="+", metavar="FILE")
    plates_read.add_argument("--threshold", type=float, default=None,
                             help="least mean character confidence (default 0.85)")
    plates_read.set_defaults(run=_handler("detector.plates.cli:read"), needs_config=False)

    spots = commands.add_parser("spots", help="camera spots' own scene classifiers (docs/detector.md)")
    spots_commands = spots.add_subparsers(dest="spots_command", required=True, metavar="ACTION")
    spots_train = spots_commands.add_parser("train", help="retrain the spot heads from the operators' labelled crops "
                                                          "(per spot: label counts, cross-validated figures, hash)")
    spots_train.add_argument("--camera", default=None, help="only this camera's spots")
    spots_train.add_argument("--by", default=None, help="who retrains, as recorded (default cli-<user>)")
    spots_train.set_defaults(run=_handler("web.spot_training:command"), needs_config=True)

    demo = commands.add_parser("demo", help="end to end: local Kafka, worker, detector on the sample videos")
    demo.add_argument("--exit", action="store_true",
                      help="stop everything after the summary (default: keep worker and web running until Ctrl-C)")
    demo.add_argument("--web-port", type=int, default=8080)
    demo.add_argument("--worker-port", type=int, default=6066)
    demo.add_argument("--kafka-port", type=int, default=9092)
    demo.add_argument("--kafka-data-dir", type=Path, default=None, help="default var/kafka")
    demo.add_argument("--settle-s", type=float, default=20.0, help="how long to collect incidents and tasks")
    demo.set_defaults(run=_handler("nonsite.devtools.demo:run"), needs_config=True)
    return parser


def config_check(args: argparse.Namespace, city: Optional[City]) -> int:
    assert city is not None
    print(json.dumps({"config": str(city.root), "cameras": len(city.cameras), "scenarios": len(city.scenarios),
                      "grids": len(city.grids), "officers": len(city.officers), "users": len(city.users),
                      "kafka": city.kafka.bootstrap, "weights": city.detector.weights,
                      "warnings": unwatched_scenarios(city.cameras, city.scenarios)}, ensure_ascii=False))
    return 0


def hash_password_command(args: argparse.Namespace, city: Optional[City]) -> int:
    from nonsite.passwords import hash_password

    password = args.password if args.password is not None else sys.stdin.readline().rstrip("\n")
    if not password:
        raise CommandError("empty password")
    print(hash_password(password))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        city = load_city(args.config or default_config_dir()) if args.needs_config else None
        for line in unwatched_scenarios(city.cameras, city.scenarios) if city is not None else []:
            log.warning(line)
        return int(args.run(args, city) or 0)
    except ConfigError as exc:
        print(f"nonsite: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (CommandError, KafkaSetupError) as exc:
        print(f"nonsite: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
