"""``nonsite kafka start|stop|status``: the local broker for development, the demo and the tests."""
from __future__ import annotations

import argparse
import json
import os
from typing import Optional

from nonsite.config import City
from nonsite.kafka_local import DEFAULT_DATA_DIR, LocalKafka, ensure_topics


def create_city_topics(city: City, bootstrap: str, nodes: int) -> list[str]:
    """The source topics the Faust app reads, created explicitly with the partition count it expects."""
    replication = min(city.kafka.replication_factor, nodes)
    topic_configs = {"min.insync.replicas": "2"} if replication >= 3 else {}
    return ensure_topics(bootstrap, city.kafka.topics.all().values(), city.kafka.partitions, replication,
                         topic_configs)


def start(args: argparse.Namespace, city: Optional[City]) -> int:
    assert city is not None
    external = os.environ.get("NONSITE_KAFKA_BOOTSTRAP")
    if external:
        created = create_city_topics(city, external, nodes=city.kafka.replication_factor)
        print(json.dumps({"bootstrap": external, "external": True, "topics_created": created}))
        return 0
    cluster = LocalKafka(args.data_dir or DEFAULT_DATA_DIR, nodes=args.nodes, base_port=args.port)
    bootstrap = cluster.start()
    created = create_city_topics(city, bootstrap, nodes=args.nodes)
    print(json.dumps({"bootstrap": bootstrap, "nodes": args.nodes, "data_dir": str(cluster.data_dir),
                      "topics_created": created}))
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
