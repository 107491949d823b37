"""The state table's changelog as the agent writes and, when Faust skipped messages, reads Kafka itself."""
from __future__ import annotations

from typing import Any, MutableMapping

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

    A record is ``[value, value_before, input_id]`` (:mod:`stream.state.journal`), and ``value_before``
    is, but for a redone input, the very object this store sent as the key's value last time.  So the
    bytes of the latest values sent are kept (``RECENT_VALUES`` keys) and reused for ``value_before``
    when it is that object: a case is written by every unit that touches it, and is now encoded once
    instead of twice (``bench/stream_stages.py`` times this stage).  Stored values are never changed
    in place (the engine replaces them), so the kept bytes stay true; they cost up to ``RECENT_VALUES``
    records' worth of memory.
    """

    RECENT_VALUES = 4096

    def __init__(self, store: MutableMapping[str, Any], changelog_topic: str):
        self.store = store  # the Faust table's own store (``table.data``)
        self.changelog_topic = changelog_topic
        self.pending: list[tuple[str, Any]] = []
        self.recent: dict[str, tuple[Any, bytes]] = {}  # key -> (value last sent, its bytes), oldest first
        self.reused = 0  # records whose value_before was not encoded again

    def get(self, key: str, default: Any = None) -> Any:
        return self.store.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.store[key] = value
        self.pending.append((key, value))

    def items(self) -> Any:
        return self.store.items()

    async def send_pending(self, producer: Any, partition: int) -> None:
        pending, self.pending = self.pending, []
        for key, record in pending:
            await producer.send(self.changelog_topic, wire.encode(key), self.encode(key, record), partition, None,
                                None)

    def encode(self, key: str, record: list) -> bytes:
        """``wire.encode(record)``, reusing the bytes of ``value_before`` when this store sent them last."""
        value, before, input_id = record
        value_bytes = wire.encode(value)
        recent = self.recent.pop(key, None)
        if recent is not None and recent[0] is before:
            before_bytes, self.reused = recent[1], self.reused + 1
        else:
            before_bytes = wire.encode(before)
        self.recent[key] = (value, value_bytes)
        if len(self.recent) > self.RECENT_VALUES:
            del self.recent[next(iter(self.recent))]
        return b"[" + value_bytes + b"," + before_bytes + b"," + wire.encode(input_id) + b"]"


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
