"""``nonsite kafka start|stop|status|topics``: the local broker for development, the demo and the tests.

``start`` with ``NONSITE_KAFKA_BOOTSTRAP`` set starts nothing and only creates the project's topics there
(:func:`nonsite.kafka.admin.create_city_topics`), as ``topics`` does at ``kafka.bootstrap`` (the compose
file's ``topics`` service).  ``topics --check`` changes nothing: it prints one JSON line per topic, its
lifecycle settings actual and wanted, and exits 3 when any differs or is missing.  ``topics
--shorten-retention`` is the one way to shorten the life of a kept record (a lower ``legal_years``).

Example::

    $ nonsite kafka topics --check
    {"topic": "nonsite.detections", "kind": "detections", "missing": false, "differs": [], "settings": {...}}
    ...
    {"bootstrap": "localhost:9092", "checked": 12, "differing": []}
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Optional

from nonsite.config import City
from nonsite.devtools.kafka_local import DEFAULT_DATA_DIR, LocalKafka
from nonsite.kafka.admin import TopicsReport, broker_count, create_city_topics
from nonsite.kafka.lifecycle import project_topics
from nonsite.kafka.topic_settings import check_topics

EXIT_DIFFERS = 3  # `topics --check`: a topic is missing or a setting differs from its lifecycle


def _summary(report: TopicsReport) -> dict[str, object]:
    return {"topics_created": report.created, "replication": report.replication.as_dict(),
            "topics": report.per_topic(), "settings_changed": [c.as_dict() for c in report.changes]}


def start(args: argparse.Namespace, city: Optional[City]) -> int:
    assert city is not None
    external = os.environ.get("NONSITE_KAFKA_BOOTSTRAP")
    if external:
        report = create_city_topics(city, external)
        print(json.dumps({"bootstrap": external, "external": True, **_summary(report)}))
        return 0
    cluster = LocalKafka(args.data_dir or DEFAULT_DATA_DIR, nodes=args.nodes, base_port=args.port)
    bootstrap = cluster.start()
    report = create_city_topics(city, bootstrap)
    print(json.dumps({"bootstrap": bootstrap, "nodes": args.nodes, "data_dir": str(cluster.data_dir),
                      **_summary(report)}))
    return 0


def _existing(args: argparse.Namespace) -> Optional[LocalKafka]:
    return LocalKafka.from_state(args.data_dir or DEFAULT_DATA_DIR)


def stop(args: argparse.Namespace, city: Optional[City]) -> int:
    cluster = _existing(args)
    if cluster is None:
        print("no local Kafka was started from this data dir")
        return 0
    cluster.stop()
    print(json.dumps({"stopped": cluster.bootstrap}))
    return 0


def status(args: argparse.Namespace, city: Optional[City]) -> int:
    cluster = _existing(args)
    if cluster is None:
        print(json.dumps({"running": [], "data_dir": str(args.data_dir or DEFAULT_DATA_DIR)}))
        return 3
    report = cluster.status()
    print(json.dumps(report))
    return 0 if report["brokers_answering"] == report["nodes"] else 3


def topics(args: argparse.Namespace, city: Optional[City]) -> int:
    """Create and hold every topic at ``kafka.bootstrap``; with ``--check``, only compare and report."""
    assert city is not None
    bootstrap = city.kafka.bootstrap
    if not args.check:
        report = create_city_topics(city, bootstrap, shorten=args.shorten_retention)
        print(json.dumps({"bootstrap": bootstrap, **_summary(report)}))
        return 0
    broker_count(bootstrap)  # one line, and no client noise, when Kafka does not answer
    checks = check_topics(bootstrap, project_topics(city))
    for check in checks:
        print(json.dumps(check.as_dict()))
    differing = [c.name for c in checks if c.differs]
    print(json.dumps({"bootstrap": bootstrap, "checked": len(checks), "differing": differing}))
    return EXIT_DIFFERS if differing else 0
