"""Where a message sits in Kafka, as one string: ``topic/partition/offset``.

Case events name the message that caused them by it, and dead letters are identified by it.

Example::

    >>> source_of("nonsite.feedback", 0, 17)
    'nonsite.feedback/0/17'
    >>> parse_source("nonsite.feedback/0/17")
    ('nonsite.feedback', 0, 17)
"""
from __future__ import annotations


def source_of(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}/{offset}"


def parse_source(source: str) -> tuple[str, int, int]:
    """Inverse of :func:`source_of`; raises ValueError for anything else."""
    topic, partition, offset = source.rsplit("/", 2)
    return topic, int(partition), int(offset)
