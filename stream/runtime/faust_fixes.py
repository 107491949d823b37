"""Workarounds for faust-streaming 0.15.3 (with aiokafka 0.14.0), each found by a test or a benchmark.

Re-check each one when either version changes: the test or benchmark named in its docstring tells
whether it is still needed.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Mapping, Optional

import faust
import structlog

log = structlog.get_logger("nonsite.stream.faust")

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


class _Fetched(dict):
    """Records drained from aiokafka, with the assignment they came from and each partition's position after."""

    assignment: Any = None
    positions: dict = {}


def keep_undelivered_records(on_rewind: Optional[Callable[[int], None]] = None) -> None:
    """Make the Faust consumer give back to aiokafka the records it fetched but did not deliver.

    faust-streaming 0.15.3 (with aiokafka 0.14.0) loses records in two steps, and a table's changelog
    recovery then waits for them forever ("No event received for active tp ... since recovery start"):

    1. ``_fetch_records`` hands aiokafka's ``fetched_records`` the consumer's live set of active
       (not paused) partitions.  A call in flight across a rebalance sees that set emptied by
       ``pause_partitions(assigned)``, and aiokafka reads an empty set as *every* partition: it drains
       the records of paused partitions too, such as a changelog partition that recovery has just
       sought to its start, and moves their positions to the end.
    2. ``Consumer.getmany`` then drops, without moving the position back, every record it does not
       yield: all of them while the flow is stopped (rebalancing), the rest of the batch when the
       flow stops or the generation changes, and those of a partition no longer active.  Stream
       partitions are sought to their committed offsets afterwards; changelog partitions have none.

    Found by tests/stream/test_worker_failover.py (a worker stuck in recovery of a changelog partition
    whose position had passed records it never read; 3 of 5 runs failed).  Here the fetch asks for a
    snapshot of the active partitions (none: no fetch), and what ``getmany`` does not deliver is sought
    back to, in the consumer's thread, unless that partition's position moved since (a seek, a new
    assignment).  ``on_rewind`` gets the number of partitions sought back.
    """
    from faust.transport.consumer import Consumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if getattr(Consumer.getmany, "keeps_undelivered", False):
        Consumer.getmany.on_rewind = on_rewind  # type: ignore[attr-defined]
        return
    fetch = AIOKafkaConsumerThread._fetch_records

    async def fetch_records(self, consumer, active_partitions, timeout=None, max_records=None):  # type: ignore[no-untyped-def]
        wanted = None if active_partitions is None else frozenset(active_partitions)
        if wanted is not None and not wanted:
            return {}
        records = _Fetched(await fetch(self, consumer, wanted, timeout=timeout, max_records=max_records))
        subscription = consumer._subscription.subscription
        records.assignment = subscription.assignment if subscription is not None else None
        states = {tp: records.assignment.state_value(tp) for tp in records} if records.assignment else {}
        records.positions = {tp: state.position for tp, state in states.items()
                             if state is not None and state.has_valid_position}
        return records

    async def rewind(self, assignment, firsts: Mapping[Any, int], positions: Mapping[Any, int]) -> list:  # type: ignore[no-untyped-def]
        subscription = self._ensure_consumer()._subscription.subscription
        if subscription is None or subscription.assignment is not assignment:
            return []  # a new assignment: its positions come from its own seeks
        moved = []
        for tp, first in firsts.items():
            state = assignment.state_value(tp)
            if state is not None and state.has_valid_position and state.position == positions.get(tp):
                self._ensure_consumer().seek(tp, first)
                moved.append(f"{tp.topic}[{tp.partition}]@{first}")
        return moved

    async def getmany(self, timeout: float):  # type: ignore[no-untyped-def]
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        delivered: dict = {}  # partition -> offset of the last record handed on
        held: set = set()  # partitions with a record not handed on: their later records are held too
        try:
            if self.flow_active:
                for tp, record in self.scheduler.iterate(records):
                    if not self.flow_active or self.app.consumer_generation_id != generation_id:
                        break
                    if tp in held:
                        continue
                    if active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
                        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                        delivered[tp] = record.offset
                        yield tp, self._to_message(tp, record)
                    else:
                        held.add(tp)
            else:
                try:
                    await self.perform_seek()  # as Faust does: stream partitions back to their committed offsets
                except Exception as exc:  # noqa: BLE001  (Faust only logs this too)
                    self.log.warning(f"exception performing seek when flow not active {exc}")
        finally:
            await give_back(self, records, delivered)

    async def give_back(self, records, delivered: Mapping[Any, int]) -> None:  # type: ignore[no-untyped-def]
        if not isinstance(records, _Fetched) or records.assignment is None:
            return
        firsts = {}
        for tp, batch in records.items():
            last = delivered.get(tp)
            rest = [record.offset for record in batch if last is None or record.offset > last]
            if rest:
                firsts[tp] = rest[0]
        if not firsts:
            return
        try:
            moved = await self._thread.call_thread(rewind, self._thread, records.assignment, firsts, records.positions)
        except Exception as exc:  # noqa: BLE001  (as before this fix: the records stay lost, the consumer goes on)
            log.warning("faust consumer: could not seek back to undelivered records", error=repr(exc))
            return
        if moved:
            log.info("faust consumer: fetched records not delivered, sought back", partitions=moved)
            hook = Consumer.getmany.on_rewind  # type: ignore[attr-defined]
            if hook is not None:
                hook(len(moved))

    getmany.keeps_undelivered = True  # type: ignore[attr-defined]
    getmany.on_rewind = on_rewind  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._fetch_records = fetch_records
    Consumer.getmany = getmany


def make_flush_complete(buffer) -> None:
    """Make Faust's producer-buffer flush wait until the buffer is really empty.

    faust-streaming 0.15.3 ``ProducerBuffer.flush()`` returns as soon as no message was sent for 0.1 s,
    even with table changelog records still queued; the consumer then commits offsets whose state
    never reached Kafka, and a worker killed right after loses those inputs.  Found by the SIGKILL test.
    """
    async def flush_all() -> None:
        while buffer.size:
            if buffer.state != "running":
                raise RuntimeError("Cannot flush: Producer not Running")
            buffer.message_sent.clear()
            try:
                await asyncio.wait_for(buffer.message_sent.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                continue

    buffer.flush = flush_all


def store_reader(table: faust.Table) -> Mapping[str, Any]:
    """What the table's reads go to, without Faust's sensor call on every get (a hot-path cost).

    With the memory store, the plain dict.
    """
    store = table.data
    data = getattr(store, "data", None)
    return data if isinstance(data, dict) else store
