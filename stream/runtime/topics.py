"""The worker's topics: names, partitioning, and their creation with the replication the cluster needs.

Topics come from ``kafka.topics`` plus the worker's internal ones: ``<app_id>.cases`` (every input
routed to its district), the ``case_state`` table's changelog and Faust's leader topic.  All are
created explicitly before the worker starts, with ``kafka.partitions`` partitions (the leader topic:
one), so the tables use the same partition count (Faust raises ``PartitionsMismatch`` otherwise), and
with the replication ``kafka.replication_factor`` gives for this cluster (``auto``: min(3, brokers),
``min.insync.replicas`` 2 from three replicas on).  Faust creates a topic only when it does not exist,
so its internal topics get these settings too; existing topics are checked against them.

Example::

    >>> partition_for("G01", 4)
    1
"""
from __future__ import annotations

import structlog
from kafka.partitioner.default import murmur2

from nonsite.config import City
from nonsite.kafka.admin import TopicSpec, TopicsReport, replicate_topics, replication_for

STATE_TABLE = "case_state"  # every view of stream.state.tables.Tables, see stream.state.journal
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
    those of every topic.  Raises :class:`~nonsite.kafka.admin.ReplicationError` (one line) when an
    existing topic has fewer replicas than required.
    """
    bootstrap = city.kafka.bootstrap
    report = replicate_topics(bootstrap, topic_specs(city), replication_for(bootstrap, city.kafka.replication_factor))
    log.info("kafka topics", bootstrap=bootstrap, **report.log_fields())
    return report


def create_topics(city: City) -> list[str]:
    """:func:`prepare_topics`; returns the names of the topics it created."""
    return prepare_topics(city).created
