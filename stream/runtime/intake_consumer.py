"""Intake: the input topics → the internal cases topic, in batches, with a plain aiokafka consumer.

Every message of the detections, camera-status and feedback topics is validated and routed to its
district (:func:`stream.domain.intake.admit`); bad ones go to the dead-letter topic.  The valid inputs of one
district in a poll travel in one cases-topic message (:func:`stream.domain.intake.pack`), which the Faust
``cases`` agent applies as one unit.

Why not a Faust agent: intake is stateless, and Faust's per-message path (conductor, channel,
stream, sensors, acks) cost about 25 µs a message, more than everything else intake does.  Here a
poll of up to ``INTAKE_BATCH`` messages is handled in one pass, so the detections themselves never
go through Faust; only the packed cases-topic messages do.

Delivery is at least once: the consumer commits a poll's offsets only after every message routed
from it was acknowledged by Kafka (``acks=all``, idempotent producer), in poll order; up to
``MAX_POLLS_IN_FLIGHT`` polls are routed while earlier ones wait for their acknowledgements.  After
a crash or a rebalance the inputs since the last commit are routed again, and the case engine skips
them by their source offsets (:mod:`stream.state.journal`).

Example::

    >>> intake = Intake(city, metrics)          # doctest: +SKIP
    >>> app.service(intake)                     # doctest: +SKIP  (started and stopped with the worker)
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Optional

import structlog
from mode import Service

from contract import DeadLetter
from nonsite.config import City
from stream.runtime.topics import cases_topic_name, partition_for
from stream.domain.dedup import CityMap
from stream.domain.intake import Envelope, admit, pack
from stream.runtime.metrics import StreamMetrics

INTAKE_BATCH = 2000  # messages per poll, at most
MAX_POLLS_IN_FLIGHT = 4  # polls routed whose messages Kafka has not acknowledged yet, at most
POLL_WAIT_MS = 20  # the longest a poll waits for messages (also the broker's fetch wait)
ROLES = ("detections", "camera_status", "feedback")
log = structlog.get_logger("nonsite.stream.domain.intake")


class Intake(Service):
    """The intake consumer group ``<app_id>-intake``, run as a service of the Faust worker."""

    def __init__(self, city: City, metrics: StreamMetrics, city_map: Optional[CityMap] = None,
                 instance: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self.city, self.metrics = city, metrics
        self.map = city_map or CityMap.build(city)
        names = city.kafka.topics.all()
        self.role_of = {names[role]: role for role in ROLES}
        self.cases_topic = cases_topic_name(city)
        self.dead_letter_topic = names["dead_letter"]
        self.instance = instance  # static group membership, as the Faust consumer has
        self.consumer: Any = None
        self.producer: Any = None
        self.partition_of = {district: partition_for(district, city.kafka.partitions)
                             for district in self.map.districts}

    async def on_start(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        bootstrap = self.city.kafka.bootstrap
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                         linger_ms=5, max_batch_size=1024 * 1024, max_request_size=2 * 1024 * 1024)
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            *self.role_of, bootstrap_servers=bootstrap, group_id=f"{self.city.stream.app_id}-intake",
            group_instance_id=f"{self.instance}-intake" if self.instance else None,
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=INTAKE_BATCH,
            fetch_max_wait_ms=POLL_WAIT_MS, max_partition_fetch_bytes=4 * 1024 * 1024,
            session_timeout_ms=int(self.city.stream.session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(3.0, self.city.stream.session_timeout_s / 5) * 1000))
        await self.consumer.start()

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    @Service.task
    async def _route_forever(self) -> None:
        # Polls in flight: (acknowledgements of what a poll sent, the offsets to commit for it).  The
        # next poll is routed while Kafka acknowledges the last; offsets are committed in poll order,
        # each only once everything its poll sent is acknowledged.
        in_flight: deque[tuple[asyncio.Future, dict[Any, int]]] = deque()
        while not self.should_stop:
            polled = await self.consumer.getmany(timeout_ms=POLL_WAIT_MS, max_records=INTAKE_BATCH)
            if polled:
                acks = asyncio.gather(*await self.route(polled))
                in_flight.append((acks, {tp: records[-1].offset + 1 for tp, records in polled.items()}))
            while in_flight and (in_flight[0][0].done() or len(in_flight) > MAX_POLLS_IN_FLIGHT or not polled):
                acks, offsets = in_flight.popleft()
                await acks
                await self._commit(offsets)

    async def _commit(self, offsets: dict[Any, int]) -> None:
        from aiokafka.errors import CommitFailedError, IllegalStateError

        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # a rebalance took the partitions: their new owner routes these inputs again, and the
            # engine skips what it already applied
            log.warning("intake commit failed; inputs will be routed again", error=str(exc))

    async def route(self, polled: dict[Any, list[Any]]) -> list[asyncio.Future]:
        """Validate and route one poll; returns the acknowledgements of every message sent."""
        by_district: dict[str, tuple[list[Envelope], list[bytes]]] = {}
        sent: list[asyncio.Future] = []
        for tp, records in polled.items():
            role = self.role_of[tp.topic]
            self.metrics.messages_in.labels(topic=tp.topic).inc(len(records))
            for record in records:
                result = admit(role, record.value, tp.topic, tp.partition, record.offset, self.map)
                if isinstance(result, DeadLetter):
                    sent.append(await self._dead_letter(result))
                else:
                    envelopes, raws = by_district.setdefault(result.district, ([], []))
                    envelopes.append(result)
                    raws.append(record.value)
        for district, (envelopes, raws) in by_district.items():
            for value in pack(envelopes, raws=raws):
                sent.append(await self.producer.send(self.cases_topic, value, key=district.encode(),
                                                     partition=self.partition_of[district]))
        return sent

    async def _dead_letter(self, letter: DeadLetter) -> asyncio.Future:
        self.metrics.dead_letters.labels(source_topic=letter.topic).inc()
        self.metrics.messages_out.labels(topic=self.dead_letter_topic).inc()
        return await self.producer.send(self.dead_letter_topic, letter.to_json(), key=letter.topic.encode())

    async def lag(self) -> dict[tuple[str, int], int]:
        """Messages not yet read, per input partition (for the consumer-lag gauge)."""
        lags: dict[tuple[str, int], int] = {}
        if self.consumer is None:
            return lags
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is not None:
                lags[(tp.topic, tp.partition)] = max(0, end - await self.consumer.position(tp))
        return lags

