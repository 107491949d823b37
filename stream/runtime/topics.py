"""The worker's topics: names, partitioning, and their creation with the replication and lifecycle they need.

Topics come from ``kafka.topics`` plus the worker's internal ones: ``<app_id>.cases`` (every input
routed to its district), the ``case_state`` table's changelog and Faust's leader topic (named in
:mod:`nonsite.kafka.lifecycle`, which ``nonsite kafka start|topics`` shares).  All are created
explicitly before the worker starts, with ``kafka.partitions`` partitions (the leader topic: one), so
the tables use the same partition count (Faust raises ``PartitionsMismatch`` otherwise), with the
replication ``kafka.replication_factor`` gives for this cluster (``auto``: min(3, brokers),
``min.insync.replicas`` 2 from three replicas on) and with their lifecycle (cleanup policy, retention:
docs/topics.md).  Faust creates a topic only when it does not exist, so its internal topics get these
settings too; existing topics are checked against them and brought to their lifecycle.

Example::

    >>> partition_for("G01", 4)
    1
"""
from __future__ import annotations

from kafka.partitioner.default import murmur2

from nonsite.config import City
from nonsite.kafka.admin import TopicsReport, create_city_topics
from nonsite.kafka.lifecycle import (STATE_TABLE, TopicSpec, cases_topic_name, changelog_topic_name,
                                     leader_topic_name, project_topics)

__all__ = ["STATE_TABLE", "cases_topic_name", "changelog_topic_name", "leader_topic_name", "topic_specs",
           "partition_for", "prepare_topics", "create_topics"]


def topic_specs(city: City) -> list[TopicSpec]:
    """Every topic the worker uses, its own internal ones included, with their partitions and lifecycle."""
    return project_topics(city)


def partition_for(key: str, partitions: int) -> int:
    """Kafka's default (murmur2) partition of a string key, the same in every client."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def prepare_topics(city: City) -> TopicsReport:
    """Create the worker's topics that do not exist yet and hold all of them to the required replication
    and to their lifecycle (:func:`nonsite.kafka.admin.create_city_topics`).

    Logs one line per lifecycle setting changed (``kafka topic setting changed``), then ``kafka topics``
    with the replication factor and min.insync.replicas required and those of every topic.  Raises
    :class:`~nonsite.kafka.admin.ReplicationError` (one line) when an existing topic has fewer replicas
    than required, :class:`~nonsite.kafka.topic_settings.TopicSettingError` when the cluster refuses a setting.
    """
    return create_city_topics(city, city.kafka.bootstrap)


def create_topics(city: City) -> list[str]:
    """:func:`prepare_topics`; returns the names of the topics it created."""
    return prepare_topics(city).created
