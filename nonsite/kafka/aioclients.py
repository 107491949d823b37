"""The aiokafka clients the worker and the web app build, with what they share (see :mod:`nonsite.kafka.clients`).

A separate module because aiokafka is installed by the worker's and the web's extras only: the
detector imports :mod:`nonsite.kafka.clients` and must not reach aiokafka.  The worker's intake
(:mod:`stream.runtime.intake_consumer`) builds its own clients with the same settings.

Example::

    >>> producer = aioclients.producer("localhost:9092", client_id="nonsite-web", linger_ms=0)  # doctest: +SKIP
    >>> await producer.start()                                                                  # doctest: +SKIP
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


def producer(bootstrap: str, **settings: Any) -> "AIOKafkaProducer":
    """A producer with ``acks=all`` and idempotence; ``settings`` are the caller's own. Not started."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **settings)


def reader(bootstrap: str, *topics: str, **settings: Any) -> "AIOKafkaConsumer":
    """A consumer in no group that commits nothing (reads ``topics`` or what it is assigned). Not started."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                            **settings)
