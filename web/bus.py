"""Kafka for the web: one consumer that folds the topics into the read model, one producer for Feedback.

The consumer has no group (it reads every partition from the beginning on each start, so the read
model is complete after a restart); the producer uses acks=all with idempotence.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Optional

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from nonsite.config import City
from stream.records import Alert, CameraStatus, CaseEvent, ContractError, Feedback, Incident, Task
from web.readmodel import Change, ReadModel

log = structlog.get_logger("web.bus")

READ_TOPICS = {"incidents": Incident, "tasks": Task, "alerts": Alert, "camera_status": CameraStatus,
               "case_events": CaseEvent}

CONSUMED = Counter("nonsite_web_consumed_total", "records folded into the web read model", ["topic"])
REJECTED = Counter("nonsite_web_bad_records_total", "records the web could not read", ["topic"])
FEEDBACK_SENT = Counter("nonsite_web_feedback_total", "feedback events produced", ["action"])


class Bus:
    """Owns the Kafka clients; ``listeners`` are asyncio queues that receive every change (for SSE)."""

    def __init__(self, city: City, model: ReadModel):
        self.city, self.model = city, model
        self.topics = {getattr(city.kafka.topics, kind): (kind, record) for kind, record in READ_TOPICS.items()}
        self.listeners: set[asyncio.Queue] = set()
        self.consumer: Optional[AIOKafkaConsumer] = None
        self.producer: Optional[AIOKafkaProducer] = None
        self.task: Optional[asyncio.Task] = None
        self.changed = asyncio.Condition()
        self.last_message_at: Optional[float] = None

    async def start(self) -> None:
        bootstrap = self.city.kafka.bootstrap
        self.consumer = AIOKafkaConsumer(*self.topics, bootstrap_servers=bootstrap, group_id=None,
                                         auto_offset_reset="earliest", enable_auto_commit=False,
                                         fetch_max_wait_ms=100, metadata_max_age_ms=5000,
                                         client_id="nonsite-web")
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                         client_id="nonsite-web", linger_ms=0)
        await self.consumer.start()
        await self.producer.start()
        self.task = asyncio.create_task(self._consume(), name="web-read-model")
        log.info("web.bus.started", bootstrap=bootstrap, topics=sorted(self.topics))

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
        for client in (self.consumer, self.producer):
            if client is not None:
                await client.stop()

    async def _consume(self) -> None:
        assert self.consumer is not None
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=200, max_records=1000)
            except KafkaError as exc:
                log.warning("web.bus.fetch_failed", error=str(exc))
                await asyncio.sleep(1)
                continue
            changes: list[Change] = []
            for partition, messages in batches.items():
                kind, record_type = self.topics[partition.topic]
                for message in messages:
                    changes.extend(self._fold(kind, record_type, message))
            if changes:
                self.last_message_at = time.time()
                self._publish(changes)
                async with self.changed:
                    self.changed.notify_all()

    def _fold(self, kind: str, record_type: Any, message: Any) -> list[Change]:
        try:
            record = record_type.from_json(message.value)
        except ContractError as exc:
            REJECTED.labels(kind).inc()
            log.warning("web.bus.bad_record", topic=message.topic, partition=message.partition,
                        offset=message.offset, reason=str(exc))
            return []
        CONSUMED.labels(kind).inc()
        return self.model.apply(kind, record)

    def _publish(self, changes: list[Change]) -> None:
        for queue in list(self.listeners):
            try:
                queue.put_nowait(changes)
            except asyncio.QueueFull:  # a stalled browser: drop it, it reconnects and gets a fresh snapshot
                self.listeners.discard(queue)

    async def send_feedback(self, feedback: Feedback) -> None:
        assert self.producer is not None
        await self.producer.send_and_wait(self.city.kafka.topics.feedback, feedback.to_json(),
                                          key=feedback.incident_id.encode())
        FEEDBACK_SENT.labels(feedback.action).inc()
        log.info("web.feedback.sent", feedback_id=feedback.feedback_id, action=feedback.action,
                 incident_id=feedback.incident_id, actor=feedback.actor)

    async def wait_for_outcome(self, feedback_id: str, timeout_s: float) -> Optional[CaseEvent]:
        """The processor's case event for this feedback, or None if none came within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        async with self.changed:
            while (outcome := self.model.outcome(feedback_id)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(self.changed.wait(), remaining)
                except asyncio.TimeoutError:
                    return None
        return outcome
