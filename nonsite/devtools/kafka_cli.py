"""``nonsite kafka start|stop|status``: the local broker for development, the demo and the tests.

``start`` with ``NONSITE_KAFKA_BOOTSTRAP`` set starts nothing and only creates the city's topics there
(:func:`nonsite.kafka.admin.create_city_topics`), as the compose file's ``topics`` service does.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Optional

from nonsite.config import City
from nonsite.devtools.kafka_local import DEFAULT_DATA_DIR, LocalKafka
from nonsite.kafka.admin import TopicsReport, create_city_topics


def _summary(report: TopicsReport) -> dict[str, object]:
    return {"topics_created": report.created, "replication": report.replication.as_dict(),
            "topics": report.per_topic()}


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
