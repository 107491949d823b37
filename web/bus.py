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
from stream.records import Alert, CameraStatus, CaseEvent, ContractError, DeadLetter, Feedback, Incident, Task
from web.readmodel import Change, ReadModel, Verdict, position

log = structlog.get_logger("web.bus")

READ_TOPICS = {"incidents": Incident, "tasks": Task, "alerts": Alert, "camera_status": CameraStatus,
               "case_events": CaseEvent, "dead_letter": DeadLetter}

CONSUMED = Counter("nonsite_web_consumed_total", "records folded into the web read model", ["topic"])
REJECTED = Counter("nonsite_web_bad_records_total", "records the web could not read", ["topic"])
FEEDBACK_SENT = Counter("nonsite_web_feedback_total", "feedback events produced", ["action"])


class MissingTopics(RuntimeError):
    """The topics the web reads or writes do not exist; ``str()`` is the one line for the user."""


def check_topics(city: City) -> None:
    """Raise :class:`MissingTopics` unless every topic the web uses exists (the broker does not auto-create)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError as SyncKafkaError

    wanted = [getattr(city.kafka.topics, kind) for kind in (*READ_TOPICS, "feedback")]
    try:
        admin = KafkaAdminClient(bootstrap_servers=city.kafka.bootstrap, client_id="nonsite-web-probe",
                                 request_timeout_ms=10_000)
    except SyncKafkaError as exc:
        raise MissingTopics(f"kafka at {city.kafka.bootstrap} does not answer: {exc}") from None
    try:
        missing = sorted(set(wanted) - set(admin.list_topics()))
    finally:
        admin.close()
    if missing:
        raise MissingTopics(f"kafka at {city.kafka.bootstrap} has no topic {', '.join(missing)} "
                            f"(`nonsite kafka start` or the worker creates them)")


class Bus:
    """Owns the Kafka clients; ``listeners`` are asyncio queues that receive every change (for SSE)."""

    def __init__(self, city: City, model: ReadModel):
        self.city, self.model = city, model
        model.feedback_topic = city.kafka.topics.feedback
        self.topics = {getattr(city.kafka.topics, kind): (kind, record) for kind, record in READ_TOPICS.items()}
        self.listeners: set[asyncio.Queue] = set()
        self.consumer: Optional[AIOKafkaConsumer] = None
        self.producer: Optional[AIOKafkaProducer] = None
        self.task: Optional[asyncio.Task] = None
        self.changed = asyncio.Condition()
        self.last_message_at: Optional[float] = None

    async def start(self) -> None:
        bootstrap = self.city.kafka.bootstrap
        await asyncio.to_thread(check_topics, self.city)
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

    @property
    def healthy(self) -> bool:
        return self.task is not None and not self.task.done()

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
        try:
            return self.model.apply(kind, record)
        except Exception as exc:  # a bug must not stop the read model: log, count, keep reading
            REJECTED.labels(kind).inc()
            log.error("web.bus.apply_failed", topic=message.topic, partition=message.partition,
                      offset=message.offset, error=f"{type(exc).__name__}: {exc}")
            return []

    def _publish(self, changes: list[Change]) -> None:
        for queue in list(self.listeners):
            try:
                queue.put_nowait(changes)
            except asyncio.QueueFull:  # a stalled browser: drop it, it reconnects and gets a fresh snapshot
                self.listeners.discard(queue)

    async def send_feedback(self, feedback: Feedback) -> str:
        """Write one feedback (acks=all, keyed by incident) and return its position ``topic/partition/offset``."""
        assert self.producer is not None
        sent = await self.producer.send_and_wait(self.city.kafka.topics.feedback, feedback.to_json(),
                                                 key=feedback.incident_id.encode())
        FEEDBACK_SENT.labels(feedback.action).inc()
        where = position(sent.topic, sent.partition, sent.offset)
        log.info("web.feedback.sent", feedback_id=feedback.feedback_id, action=feedback.action,
                 incident_id=feedback.incident_id, actor=feedback.actor, position=where)
        return where

    async def wait_for_outcome(self, keys: tuple[str, ...], timeout_s: float) -> Optional[Verdict]:
        """The processor's verdict on a feedback (by id or position), or None if none came within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        async with self.changed:
            while (outcome := self.model.outcome(*keys)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(self.changed.wait(), remaining)
                except asyncio.TimeoutError:
                    return None
        return outcome
