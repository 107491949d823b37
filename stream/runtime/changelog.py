"""The state table's changelog as the agent writes and, when Faust skipped messages, reads Kafka itself."""
from __future__ import annotations

from typing import Any

import faust

from contract import wire
from nonsite.config import City
from nonsite.kafka import aioclients


class ChangelogStore:
    """The journal's store: the Faust table's own store, with the changelog records sent by the agent.

    Faust's per-key path (``Table.__setitem__`` → ``send_soon`` → producer buffer, with sensor and
    callback on every write) cost more than the case engine itself.  A unit's writes are few and
    arrive together (:meth:`stream.state.journal.Journal.commit`), so the agent sends them straight to the
    producer (:meth:`send_pending`), in order, to the changelog partition of the cases message being
    applied, which is where Faust would have put them.  The records are the ones Faust writes
    (JSON key, JSON value), so Faust's table recovery and ``nonsite report`` read them unchanged; the
    consumer flushes the producer before it commits offsets, as for Faust's own changelog writes.
    """

    def __init__(self, table: faust.Table, changelog_topic: str):
        self.store = table.data
        self.changelog_topic = changelog_topic
        self.pending: list[tuple[str, Any]] = []

    def get(self, key: str, default: Any = None) -> Any:
        return self.store.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.store[key] = value
        self.pending.append((key, value))

    def items(self) -> Any:
        return self.store.items()

    async def send_pending(self, producer: Any, partition: int) -> None:
        pending, self.pending = self.pending, []
        for key, value in pending:
            await producer.send(self.changelog_topic, wire.encode(key), wire.encode(value), partition, None, None)


async def read_range(city: City, topic: str, partition: int, first: int, end: int) -> list[tuple[int, bytes]]:
    """Messages ``first`` .. ``end - 1`` of one partition, read with a plain aiokafka consumer."""
    from aiokafka import TopicPartition

    consumer = aioclients.reader(city.kafka.bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, first)
        found: list[tuple[int, bytes]] = []
        while not found or found[-1][0] < end - 1:
            batch = await consumer.getmany(tp, timeout_ms=5000)
            records = batch.get(tp, [])
            if not records:
                raise RuntimeError(f"{topic}[{partition}]: cannot read offsets {first}..{end - 1}")
            found += [(r.offset, r.value) for r in records if r.offset < end]
            if records[-1].offset >= end - 1:
                break
        return found
    finally:
        await consumer.stop()
