"""The Faust app, built from the city config: broker, topics, store, partitions, replication.

Topics come from ``kafka.topics`` plus the worker's internal ones: ``<app_id>.cases`` (every input
routed to its district), the ``case_state`` table's changelog and Faust's leader topic.  All are
created explicitly before the worker starts, with ``kafka.partitions`` partitions (the leader topic:
one), so the tables use the same partition count (Faust raises ``PartitionsMismatch`` otherwise), and
with the replication ``kafka.replication_factor`` gives for this cluster (``auto``: min(3, brokers),
``min.insync.replicas`` 2 from three replicas on).  Faust creates a topic only when it does not exist,
so its internal topics get these settings too; existing topics are checked against them
(:func:`nonsite.kafka_local.replicate_topics`).

Example::

    >>> from nonsite.config import load_city
    >>> app = build_app(load_city("configs"))      # doctest: +SKIP
    >>> app.main()                                 # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Callable, Optional

import faust
import structlog
from kafka.partitioner.default import murmur2

from nonsite.config import City
from nonsite.kafka_local import TopicSpec, TopicsReport, replicate_topics, replication_for

log = structlog.get_logger("nonsite.stream")


def cases_topic_name(city: City) -> str:
    return f"{city.stream.app_id}.cases"


def changelog_topic_name(city: City, table: str) -> str:
    return f"{city.stream.app_id}-{table}-changelog"


def leader_topic_name(city: City) -> str:
    """Faust's leader election topic (``faust.assignor.leader_assignor``), one partition."""
    return f"{city.stream.app_id}-__assignor-__leader"


def all_topics(city: City) -> list[str]:
    return list(city.kafka.topics.all().values()) + [cases_topic_name(city)]


def topic_specs(city: City) -> list[TopicSpec]:
    """Every topic the worker uses, its own internal ones included, as Faust would create them."""
    from stream.agents import STATE_TABLE

    partitions = city.kafka.partitions
    return ([TopicSpec(name, partitions) for name in all_topics(city)] +
            [TopicSpec(changelog_topic_name(city, STATE_TABLE), partitions, {"cleanup.policy": "compact"}),
             TopicSpec(leader_topic_name(city), 1)])


def partition_for(key: str, partitions: int) -> int:
    """Kafka's default (murmur2) partition of a string key, the same in every client."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def prepare_topics(city: City) -> TopicsReport:
    """Create the worker's topics that do not exist yet and hold all of them to the required replication.

    Logs one line, ``kafka topics``, with the replication factor and min.insync.replicas required and
    those of every topic.  Raises :class:`~nonsite.kafka_local.ReplicationError` (one line) when an
    existing topic has fewer replicas than required.
    """
    bootstrap = city.kafka.bootstrap
    report = replicate_topics(bootstrap, topic_specs(city), replication_for(bootstrap, city.kafka.replication_factor))
    log.info("kafka topics", bootstrap=bootstrap, **report.log_fields())
    return report


def create_topics(city: City) -> list[str]:
    """:func:`prepare_topics`; returns the names of the topics it created."""
    return prepare_topics(city).created


FETCH_MAX_WAIT_MS = 20


def shorten_fetch_wait(max_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Make the worker's Kafka consumer long-poll for ``max_wait_ms`` instead of Faust's fixed 1500 ms.

    aiokafka keeps one fetch request in flight per broker.  A partition whose records were just handed
    to an agent is left out of the next request, and that request, covering only partitions with
    nothing new (the other input topics), waits the full ``fetch_max_wait_ms`` at the broker.  The
    cases topic, fed by this same worker, then got one fetch per 1.5 s: that wait, not the CPU,
    capped a worker at about 1,000 detections/s (found with bench/stream_bench.py).  Idle, the
    consumer now sends a fetch request every ``max_wait_ms``.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "fetch_max_wait_ms", None) == max_wait_ms:
        return

    def create_worker_consumer(self, transport):  # type: ignore[no-untyped-def]
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms  # read when the consumer starts its fetcher
        return consumer

    create_worker_consumer.fetch_max_wait_ms = max_wait_ms  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer


def build_app(city: City, *, clock: Callable[[], float] = time.time, web_port: Optional[int] = None,
              data_dir: Optional[Path] = None, web_enabled: bool = True) -> faust.App:
    """A configured app with its agents, tables, timers and metrics registered (see :mod:`stream.agents`)."""
    from stream.agents import register

    settings = city.stream
    datadir = Path(data_dir or city.resolve_path(settings.data_dir)).resolve()
    port = web_port or settings.web_port
    # static membership (KIP-345): a worker restarted with the same data dir and web port rejoins at once
    # instead of waiting for its dead predecessor's session to time out.  The port is part of the id
    # because the group keeps the member's old assignment, and Faust checks it names this worker's URL.
    instance_id = f"{settings.app_id}-{hashlib.sha1(f'{datadir}:{port}'.encode()).hexdigest()[:10]}"
    brokers = [f"kafka://{server.strip()}" for server in city.kafka.bootstrap.split(",")]
    # for a topic Faust would create itself; prepare_topics() creates them all beforehand
    replication = replication_for(city.kafka.bootstrap, city.kafka.replication_factor)
    app = faust.App(
        settings.app_id,
        broker=brokers,
        store=settings.store,
        topic_partitions=city.kafka.partitions,
        topic_replication_factor=replication.factor,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        broker_commit_interval=settings.commit_interval_s,
        broker_max_poll_records=500,
        consumer_max_fetch_size=16 * 1024 * 1024,  # per partition: many 768 KB cases messages per fetch, not one
        web_enabled=web_enabled,
        web_port=port,
        web_host="localhost",
        datadir=str(datadir),
        consumer_group_instance_id=instance_id,
        table_cleanup_interval=3600.0,
        producer_acks=-1,
        producer_linger=0.005,  # a few ms of batching: far fewer produce requests per message
        producer_max_batch_size=512 * 1024,
        autodiscover=False,
        key_serializer="json",  # tables: JSON keys and values in the changelogs (read by `nonsite report`)
        value_serializer="json",
    )
    shorten_fetch_wait()
    register(app, city, clock, instance=instance_id)
    return app
