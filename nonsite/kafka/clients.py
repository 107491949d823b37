"""The kafka-python clients the processes build: the detector's producer, group-less readers, admin.

One place says what every such client shares: where Kafka is, and for a producer that a record is
acknowledged only when every in-sync replica has it (``acks=all``) and is written once
(idempotence).  The caller adds its own settings (timeouts, batching, client id) as keywords; they
go to the client unchanged.  kafka-python is imported when a client is built, so importing this
module costs nothing.

The asyncio clients of the worker and the web app are in :mod:`nonsite.kafka.aioclients`.

Example::

    >>> producer = clients.producer("localhost:9092", client_id="nonsite-detector", linger_ms=5)  # doctest: +SKIP
    >>> consumer = clients.reader("localhost:9092", "nonsite.tasks", auto_offset_reset="earliest")  # doctest: +SKIP
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

Bootstrap = Union[str, list[str]]  # "host:port,host:port" or a list of "host:port"


def producer(bootstrap: Bootstrap, **settings: Any) -> "KafkaProducer":
    """A producer with ``acks=all`` and idempotence; ``settings`` are the caller's own."""
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **settings)


def reader(bootstrap: Bootstrap, *topics: str, **settings: Any) -> "KafkaConsumer":
    """A consumer in no group that commits nothing: it reads ``topics`` (or what it is assigned) as is."""
    from kafka import KafkaConsumer

    return KafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **settings)


def admin(bootstrap: Bootstrap, client_id: str, **settings: Any) -> "KafkaAdminClient":
    """An admin client named ``client_id`` (it shows in the brokers' logs and quotas)."""
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id, **settings)
