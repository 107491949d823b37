"""Workarounds for faust-streaming 0.15.3 (with aiokafka 0.14.0), each found by a test or a benchmark.

Re-check each one when either version changes: the test or benchmark named in its docstring tells
whether it is still needed.
"""
from __future__ import annotations

import asyncio
from typing import Any, Mapping

import faust

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
