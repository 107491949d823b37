"""Kafka for the web: one consumer that records the topics in the system of record, one producer for Feedback.

The consumer has no group: it resumes every partition at the next offset the database holds for it
(:mod:`history.writer` stores them in the transaction of the rows), so a restart reads only what
came since, whatever the length of the history; the producer uses acks=all with idempotence.  Each
batch the database took is pushed to the live wall's listeners.

No message can stop the recording: a record that fails to decode or to be written, for any reason,
is counted, logged and written to the dead-letter topic, and the next one is read.  When the loop
itself fails (the consumer breaks, the database is away), health says why and the consumer is
restarted after a growing pause, from the positions the database holds.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Optional

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import Counter, Gauge

from contract import Alert, CameraStatus, CaseEvent, DeadLetter, Feedback, Incident, Task, dead_letter, utc_now
from contract.deadletter import failure_reason
from contract.position import source_of
from nonsite.config import City
from history.queries import CaseStore, Verdict
from history.writer import Change, HistoryWriter, Positioned
from nonsite.kafka import aioclients, clients

log = structlog.get_logger("web.bus")

READ_TOPICS = {"incidents": Incident, "tasks": Task, "alerts": Alert, "camera_status": CameraStatus,
               "case_events": CaseEvent, "dead_letter": DeadLetter}
MAX_REASON_CHARS = 500
RESTART_BACKOFF_S = 1.0
MAX_RESTART_BACKOFF_S = 30.0

CONSUMED = Counter("nonsite_web_consumed_total", "records written to the system of record", ["topic"])
REJECTED = Counter("nonsite_web_bad_records_total", "records the web could not decode or record", ["topic"])
DEAD_LETTERED = Counter("nonsite_web_dead_letters_total", "bad records the web wrote to the dead-letter topic",
                        ["topic"])
DEAD_LETTER_FAILED = Counter("nonsite_web_dead_letter_failures_total",
                             "bad records the web could not write to the dead-letter topic", ["topic"])
READ_MODEL_UP = Gauge("nonsite_web_read_model_up", "1 while the recording consumer is running, else 0")
CONSUMER_FAILURES = Counter("nonsite_web_read_model_failures_total",
                            "times the read-model consumer loop failed and was restarted")
FEEDBACK_SENT = Counter("nonsite_web_feedback_total", "feedback events produced", ["action"])


class MissingTopics(RuntimeError):
    """The topics the web reads or writes do not exist; ``str()`` is the one line for the user."""


def check_topics(city: City) -> None:
    """Raise :class:`MissingTopics` unless every topic the web uses exists (the broker does not auto-create)."""
    from kafka.errors import KafkaError as SyncKafkaError

    wanted = [getattr(city.kafka.topics, kind) for kind in (*READ_TOPICS, "feedback")]
    try:
        admin = clients.admin(city.kafka.bootstrap, "nonsite-web-probe", request_timeout_ms=10_000)
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

    def __init__(self, city: City, store: CaseStore, writer: HistoryWriter,
                 restart_backoff_s: float = RESTART_BACKOFF_S, max_restart_backoff_s: float = MAX_RESTART_BACKOFF_S):
        self.city, self.store, self.writer = city, store, writer
        self.topics = {getattr(city.kafka.topics, kind): (kind, record) for kind, record in READ_TOPICS.items()}
        self.dead_letter_topic = city.kafka.topics.dead_letter
        self.restart_backoff_s, self.max_restart_backoff_s = restart_backoff_s, max_restart_backoff_s
        self.listeners: set[asyncio.Queue] = set()
        self.consumer: Optional[AIOKafkaConsumer] = None
        self.producer: Optional[AIOKafkaProducer] = None
        self.task: Optional[asyncio.Task] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.changed = asyncio.Condition()
        self.last_message_at: Optional[float] = None
        self.consuming = False
        self.failure: Optional[str] = None  # why the consumer is down, for /api/health
        self.recorded = 0  # records written to the database since start

    async def start(self) -> None:
        bootstrap = self.city.kafka.bootstrap
        await asyncio.to_thread(check_topics, self.city)
        self.loop = asyncio.get_running_loop()
        self.producer = aioclients.producer(bootstrap, client_id="nonsite-web", linger_ms=0)  # acks=all, idempotent
        await self._start_consumer()
        await self.producer.start()
        self.task = asyncio.create_task(self._run(), name="web-read-model")
        log.info("web.bus.started", bootstrap=bootstrap, topics=sorted(self.topics))

    @property
    def healthy(self) -> bool:
        return self.task is not None and not self.task.done() and self.consuming

    @property
    def health_reason(self) -> Optional[str]:
        """Why the read model is not consuming, or None while it is."""
        if self.healthy:
            return None
        if self.task is None:
            return "the read-model consumer was not started"
        if self.task.done():
            return "the read-model consumer stopped"
        return self.failure or "the read-model consumer is starting"

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
        self._set_consuming(False)
        for client in (self.consumer, self.producer):
            if client is not None:
                await client.stop()

    async def _start_consumer(self) -> None:
        """A new consumer on every read topic, resuming at the positions the database holds."""
        resume_at = await asyncio.to_thread(self.writer.next_offsets)
        self.consumer = aioclients.reader(self.city.kafka.bootstrap, *self.topics, auto_offset_reset="earliest",
                                          fetch_max_wait_ms=100, metadata_max_age_ms=5000, client_id="nonsite-web")
        await self.consumer.start()
        for partition in self.consumer.assignment():
            if (partition.topic, partition.partition) in resume_at:  # the others start at the earliest offset
                self.consumer.seek(partition, resume_at[(partition.topic, partition.partition)])
        self.failure = None
        self._set_consuming(True)

    async def _stop_consumer(self) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            try:
                await consumer.stop()
            except Exception as exc:  # it is being replaced because it broke; closing it may fail too
                log.warning("web.bus.consumer_close_failed", error=failure_reason(exc))

    def _set_consuming(self, consuming: bool) -> None:
        self.consuming = consuming
        READ_MODEL_UP.set(1 if consuming else 0)

    async def _run(self) -> None:
        """Keep the consumer loop alive: on a failure, say why, wait (longer each time) and start a new consumer."""
        failures_in_a_row = 0
        while True:
            try:
                if self.consumer is None:
                    await self._start_consumer()
                    log.info("web.bus.consumer_restarted")
                    failures_in_a_row = 0
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = min(self.restart_backoff_s * 2 ** failures_in_a_row, self.max_restart_backoff_s)
                failures_in_a_row += 1
                self.failure = f"read-model consumer failed: {failure_reason(exc)}"
                self._set_consuming(False)
                CONSUMER_FAILURES.inc()
                log.error("web.bus.consumer_failed", error=failure_reason(exc), retry_in_s=delay)
                await self._stop_consumer()
                await asyncio.sleep(delay)

    async def _consume(self) -> None:
        while True:
            await self._consume_once()

    async def _consume_once(self) -> None:
        """One poll: decode, record in one transaction, push what changed to the listeners."""
        assert self.consumer is not None
        batches = await self.consumer.getmany(timeout_ms=200, max_records=1000)
        decoded = [await self._decode(message) for messages in batches.values() for message in messages]
        if not decoded:
            return
        changes = await self._record(decoded)
        self.last_message_at = time.time()
        if changes:
            self._publish(changes)
        async with self.changed:
            self.changed.notify_all()

    async def catch_up(self) -> int:
        """Record everything the topics hold now, then stop; the number of records read (``nonsite report``)."""
        await asyncio.to_thread(check_topics, self.city)
        await self._start_consumer()
        assert self.consumer is not None
        ends = await self.consumer.end_offsets(list(self.consumer.assignment()))
        start = await self._positions(ends)
        try:
            while any(position < ends[p] for p, position in (await self._positions(ends)).items()):
                await self._consume_once()
            reached = await self._positions(ends)
        finally:
            await self.stop()
        return sum(reached[p] - start[p] for p in ends)

    async def _positions(self, partitions: dict) -> dict:
        assert self.consumer is not None
        return {p: await self.consumer.position(p) for p in partitions}

    async def _decode(self, message: Any) -> Positioned:
        """The record of one message; one that cannot be read is dead-lettered and only its position is kept."""
        kind, record_type = self.topics[message.topic]
        try:
            record = record_type.from_json(message.value)
        except Exception as exc:  # whatever the content did (deep nesting, bad types): isolate it
            await self._reject(kind, message, exc)
            record = None
        return Positioned(record, message.topic, message.partition, message.offset)

    async def _record(self, batch: list[Positioned]) -> list[Change]:
        """Write the batch in one transaction; if that fails, each record alone, dead-lettering the ones that fail.

        When every record fails alone too, the database (not the records) is the problem: the error goes up
        and the loop restarts from the positions the database holds."""
        try:
            changes = await asyncio.to_thread(self.writer.write, batch)
            recorded = [item for item in batch if item.record is not None]
        except Exception as batch_error:
            log.warning("web.bus.batch_failed", records=len(batch), error=failure_reason(batch_error))
            changes, recorded = await self._record_one_by_one(batch, batch_error)
        for item in recorded:
            CONSUMED.labels(self.topics[item.topic][0]).inc()
        self.recorded += len(recorded)
        return changes

    async def _record_one_by_one(self, batch: list[Positioned], batch_error: Exception
                                 ) -> tuple[list[Change], list[Positioned]]:
        changes: list[Change] = []
        recorded, failed = [], []
        for item in batch:
            try:
                changes.extend(await asyncio.to_thread(self.writer.write, [item]))
                recorded.append(item)
            except Exception as exc:
                failed.append((item, exc))
        if failed and len(failed) == len(batch):
            raise batch_error
        for item, exc in failed:
            await self._reject(self.topics[item.topic][0], _Where(item), exc)
            skipped = Positioned(None, item.topic, item.partition, item.offset)  # its position moves on
            await asyncio.to_thread(self.writer.write, [skipped])
        return changes, [item for item in recorded if item.record is not None]

    async def _reject(self, kind: str, message: Any, exc: Exception) -> None:
        """Count, log and dead-letter one record (never one read from the dead-letter topic: that would loop)."""
        reason = failure_reason(exc)[:MAX_REASON_CHARS]
        REJECTED.labels(kind).inc()
        log.warning("web.bus.bad_record", topic=message.topic, partition=message.partition, offset=message.offset,
                    reason=reason)
        if message.topic == self.dead_letter_topic or self.producer is None:
            return
        letter = dead_letter(message.topic, message.partition, message.offset, reason, message.value or b"",
                             utc_now())
        try:
            await self.producer.send_and_wait(self.dead_letter_topic, letter.to_json(),
                                              key=letter.dead_letter_id.encode())
        except Exception as send_error:  # Kafka down: the record stays counted and logged
            DEAD_LETTER_FAILED.labels(kind).inc()
            log.error("web.bus.dead_letter_failed", dead_letter_id=letter.dead_letter_id,
                      error=failure_reason(send_error))
            return
        DEAD_LETTERED.labels(kind).inc()

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
        where = source_of(sent.topic, sent.partition, sent.offset)
        log.info("web.feedback.sent", feedback_id=feedback.feedback_id, action=feedback.action,
                 incident_id=feedback.incident_id, actor=feedback.actor, position=where)
        return where

    async def wait_for_outcome(self, keys: tuple[str, ...], timeout_s: float) -> Optional[Verdict]:
        """The processor's verdict on a feedback (by id or position), or None if none came within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        async with self.changed:
            while (outcome := await asyncio.to_thread(self.store.outcome, *keys)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(self.changed.wait(), remaining)
                except asyncio.TimeoutError:
                    return None
        return outcome


class _Where:
    """A record that failed to be written, shaped like the Kafka message it came from (for its dead letter)."""

    def __init__(self, item: Positioned):
        assert item.record is not None
        self.topic, self.partition, self.offset = item.topic, item.partition, item.offset
        self.value = item.record.to_json()
