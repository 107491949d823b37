"""The agents, one per concern, and the tables they fill.

* ``intake-detections``, ``intake-camera-status``, ``intake-feedback``: validate each raw message
  (bad ones to the dead-letter topic) and route it, keyed by district, to the internal cases topic;
  inputs are taken in batches (up to ``INTAKE_BATCH``, waiting at most ``INTAKE_WITHIN_S``) and the
  inputs of one district in a batch travel in one cases-topic message (:func:`stream.intake.pack`);
* ``cases``: the case engine (:mod:`stream.engine`) over the cases topic — dedup, dispatch,
  disposal, camera verification, first offences and statistics — publishing incidents, tasks,
  case events and alerts.  Its state is one changelog-backed table, ``case_state``, holding named
  views (``cases``, ``open_cases``, ``site_cases``, ``daily_stats``...), so that the writes of one
  cases-topic message reach the changelog together and in order (:mod:`stream.journal`);
* ``clock`` (timer, leader only): a tick per district every ``stream.tick_s`` from the injected clock;
* ``lag`` (timer): consumer lag into the metrics.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Callable, Mapping

import faust
from prometheus_client import CollectorRegistry
from faust.sensors.prometheus import setup_prometheus_sensors

import structlog

from nonsite.config import City
from stream.app import cases_topic_name, partition_for
from stream.dedup import CityMap
from stream.engine import Engine, Outputs, Tables
from stream.intake import Envelope, admit, pack, unpack
from stream.metrics import StreamMetrics
from stream.records import DeadLetter, to_iso

STATE_TABLE = "case_state"  # every view of stream.engine.Tables, see stream.journal
INTAKE_BATCH = 500  # inputs per intake batch, at most (Faust's default poll size)
INTAKE_WITHIN_S = 0.02  # the longest an input waits for its batch to fill
log = structlog.get_logger("nonsite.stream")
RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


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

    Writes still go through the table (changelog, sensors).  With the memory store, the plain dict.
    """
    store = table.data
    data = getattr(store, "data", None)
    return data if isinstance(data, dict) else store


async def read_range(city: City, topic: str, partition: int, first: int, end: int) -> list[tuple[int, bytes]]:
    """Messages ``first`` .. ``end - 1`` of one partition, read with a plain aiokafka consumer."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=city.kafka.bootstrap, enable_auto_commit=False, group_id=None)
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


def register(app: faust.App, city: City, clock: Callable[[], float]) -> None:
    names = city.kafka.topics
    partitions = city.kafka.partitions
    city_map = CityMap.build(city)
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    app.stream_metrics = metrics  # type: ignore[attr-defined]
    if app.conf.web_enabled:
        setup_prometheus_sensors(app, pattern="/metrics", registry=registry)

    topic = {role: app.topic(name, partitions=partitions, **RAW) for role, name in names.all().items()}
    cases = app.topic(cases_topic_name(city), partitions=partitions, **RAW)
    make_flush_complete(app.producer.buffer)
    state = app.Table(STATE_TABLE, default=None, partitions=partitions)
    tables = Tables.over(state, reader=store_reader(state))
    app.stream_tables = tables  # type: ignore[attr-defined]
    engine = Engine(city, tables, city_map)

    async def to_district(env: Envelope) -> None:
        await cases.send(key=env.district.encode(), value=env.to_bytes(),
                         partition=partition_for(env.district, partitions))

    async def to_dead_letter(letter: DeadLetter) -> None:
        await topic["dead_letter"].send(key=letter.topic.encode(), value=letter.to_json())
        metrics.dead_letters.labels(source_topic=letter.topic).inc()
        metrics.messages_out.labels(topic=names.dead_letter).inc()

    def intake_agent(role: str) -> None:
        source = topic[role]

        async def intake(stream: faust.StreamT) -> None:
            counter = metrics.messages_in.labels(topic=source.get_topic_name())
            # take_events acks a batch's events only after this loop body has sent its messages
            async for events in stream.take_events(INTAKE_BATCH, within=INTAKE_WITHIN_S):
                counter.inc(len(events))
                by_district: dict[str, list[Envelope]] = {}
                for event in events:
                    message = event.message
                    result = admit(role, event.value, message.topic, message.partition, message.offset, city,
                                   city_map)
                    if isinstance(result, DeadLetter):
                        await to_dead_letter(result)
                    else:
                        by_district.setdefault(result.district, []).append(result)
                for district, envs in by_district.items():
                    for value in pack(envs):
                        await cases.send(key=district.encode(), value=value,
                                         partition=partition_for(district, partitions))

        app.agent(source, name=f"intake-{role.replace('_', '-')}")(intake)

    for role in ("detections", "camera_status", "feedback"):
        intake_agent(role)

    out_counters = {role: metrics.messages_out.labels(topic=name) for role, name in names.all().items()}

    async def publish(out: Outputs) -> None:
        for incident in out.snapshots():
            await topic["incidents"].send(key=incident["incident_id"].encode(), value=json.dumps(
                incident, ensure_ascii=False, separators=(",", ":")).encode())
        for task in out.tasks:
            await topic["tasks"].send(key=task.incident_id.encode(), value=task.to_json())
        for event in out.case_events:
            await topic["case_events"].send(key=event.incident_id.encode(), value=event.to_json())
        for alert in out.alerts:
            await topic["alerts"].send(key=(alert.incident_id or alert.alert_id).encode(), value=alert.to_json())
        for letter in out.dead_letters:
            await topic["dead_letter"].send(key=letter.topic.encode(), value=letter.to_json())
        metrics.count_outputs(out, out_counters)

    async def apply(partition: int, offset: int, value: bytes) -> None:
        out = engine.handle_batch(unpack(value), at=(partition, offset), commit=False)
        await publish(out)
        engine.commit()  # state after outputs: a crash between them re-does the message

    @app.agent(cases, name="cases")
    async def run_cases(stream: faust.StreamT) -> None:
        counter = metrics.messages_in.labels(topic=cases.get_topic_name())
        async for event in stream.events():
            counter.inc()
            message = event.message
            last = engine.position(message.partition)
            if last is not None and message.offset <= last:
                continue  # delivered again: already applied
            if last is not None and message.offset > last + 1:
                # The consumer skipped messages (seen with faust-streaming 0.15.3 after a restart:
                # it resumed past offsets whose state never reached the changelog). Read them here.
                missed = await read_range(city, message.topic, message.partition, last + 1, message.offset)
                log.warning("cases consumer skipped messages; applying them from Kafka", partition=message.partition,
                            first=last + 1, count=len(missed))
                metrics.skipped_refetched.inc(len(missed))
                for offset, value in missed:
                    await apply(message.partition, offset, value)
            await apply(message.partition, message.offset, event.value)

    @app.timer(interval=city.stream.tick_s, on_leader=True, name="clock")
    async def clock_tick() -> None:
        now = to_iso(clock())
        for district in city_map.districts:
            await to_district(Envelope("tick", district, "tick", -1, {"now": now}))

    @app.timer(interval=max(city.stream.tick_s, 5.0), name="lag")
    async def lag_and_open_cases() -> None:
        monitor = app.monitor
        for tp, end in dict(getattr(monitor, "tp_end_offsets", None) or {}).items():
            read = (getattr(monitor, "tp_read_offsets", None) or {}).get(tp, -1)
            metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, end - read - 1))
        counts: dict[tuple[str, str], int] = {}
        for district in city_map.districts:
            for incident_id in tables.open_cases.get(district) or []:
                case = tables.cases.get(incident_id)
                if case:
                    key = (district, case["file"]["state"])
                    counts[key] = counts.get(key, 0) + 1
        metrics.open_cases.clear()
        for (district, state), count in counts.items():
            metrics.open_cases.labels(district=district, state=state).set(count)
