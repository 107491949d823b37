"""The agents, one per concern, and the tables they fill.

* intake (not an agent: a batching aiokafka consumer run as a service of this worker, see
  :mod:`stream.intake_consumer`): validates every input message (bad ones to the dead-letter topic)
  and routes it, keyed by district, to the internal cases topic, one message per district per poll;
* ``cases``: the case engine (:mod:`stream.domain.engine`) over the cases topic — dedup, dispatch,
  disposal, camera verification, first offences and statistics — publishing incidents, tasks,
  case events and alerts.  Its state is one changelog-backed table, ``case_state``, holding named
  views (``cases``, ``open_cases``, ``site_cases``, ``daily_stats``...), so that the writes of one
  cases-topic message reach the changelog together and in order (:mod:`stream.state.journal`);
* ``clock`` (timer, leader only): a tick per district every ``stream.tick_s`` from the injected clock;
* ``lag`` (timer): consumer lag into the metrics.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Mapping

import faust
from prometheus_client import CollectorRegistry
from faust.sensors.prometheus import setup_prometheus_sensors

import structlog

from contract import DeadLetter, to_iso
from contract import wire
from contract.deadletter import dead_letter, failure_reason
from nonsite.config import City
from stream.app import cases_topic_name, changelog_topic_name, partition_for
from stream.domain.dedup import CityMap
from stream.domain.engine import Engine, Outputs, Tables
from stream.domain.intake import Envelope, unpack
from stream.intake_consumer import Intake
from stream.metrics import StreamMetrics

STATE_TABLE = "case_state"  # every view of stream.domain.engine.Tables, see stream.state.journal
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

    With the memory store, the plain dict.
    """
    store = table.data
    data = getattr(store, "data", None)
    return data if isinstance(data, dict) else store


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


def inputs_in(value: bytes) -> int:
    """How many inputs a cases message holds (1 when it cannot be read: it was dead-lettered then)."""
    try:
        return len(unpack(value))
    except Exception:  # noqa: BLE001
        return 1


def register(app: faust.App, city: City, clock: Callable[[], float], instance: str = "") -> None:
    names = city.kafka.topics
    partitions = city.kafka.partitions
    city_map = CityMap.build(city)
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    app.stream_metrics = metrics  # type: ignore[attr-defined]
    if app.conf.web_enabled:
        setup_prometheus_sensors(app, pattern="/metrics", registry=registry)

    cases_topic = cases_topic_name(city)
    cases = app.topic(cases_topic, partitions=partitions, **RAW)

    def read_units(value: bytes, partition: int, offset: int) -> tuple[list[Envelope], list[DeadLetter]]:
        """The inputs of one cases message, or none and its dead letter when it cannot be read (never raises)."""
        try:
            return unpack(value), []
        except Exception as exc:  # noqa: BLE001  (message content must never stop the worker)
            letter = dead_letter(cases_topic, partition, offset, f"cases message: {failure_reason(exc)}", value)
            log.error("unreadable cases message dead-lettered", partition=partition, offset=offset,
                      reason=letter.reason)
            return [], [letter]

    make_flush_complete(app.producer.buffer)
    state = app.Table(STATE_TABLE, default=None, partitions=partitions)
    changelog = ChangelogStore(state, changelog_topic_name(city, STATE_TABLE))
    tables = Tables.over(changelog, reader=store_reader(state))
    app.stream_tables = tables  # type: ignore[attr-defined]
    engine = Engine(city, tables, city_map)

    async def to_district(env: Envelope) -> None:
        await cases.send(key=env.district.encode(), value=env.to_bytes(),
                         partition=partition_for(env.district, partitions))

    intake = Intake(city, metrics, city_map, instance=instance)
    app.service(intake)

    out_counters = {role: metrics.messages_out.labels(topic=name) for role, name in names.all().items()}

    async def publish(out: Outputs) -> None:
        # straight to the producer, not through faust.Topic.send (channel, future message and sensor
        # calls for every message): these are most of what the worker sends.  The consumer still
        # flushes this producer before it commits offsets.
        send = app.producer.send
        for incident in out.snapshots():
            await send(names.incidents, incident["incident_id"].encode(), wire.encode(incident), None, None, None)
        for task in out.tasks:
            await send(names.tasks, task.incident_id.encode(), task.to_json(), None, None, None)
        for event in out.case_events:
            await send(names.case_events, event.incident_id.encode(), event.to_json(), None, None, None)
        for alert in out.alerts:
            await send(names.alerts, (alert.incident_id or alert.alert_id).encode(), alert.to_json(), None, None,
                       None)
        for letter in out.dead_letters:
            await send(names.dead_letter, letter.topic.encode(), letter.to_json(), None, None, None)
        metrics.count_outputs(out, out_counters)

    async def apply(partition: int, offset: int, value: bytes) -> None:
        redo_reads = tables.journal.redo_reads
        inputs, unreadable = read_units(value, partition, offset)
        out = engine.handle_batch_isolated(inputs, at=(partition, offset), cases_topic=cases_topic, commit=False)
        out.dead_letters[:0] = unreadable
        if tables.journal.redo_reads != redo_reads:
            metrics.redone.inc()
        await publish(out)
        engine.commit()  # state after outputs: a crash between them re-does the message
        await changelog.send_pending(app.producer, partition)

    @app.agent(cases, name="cases")
    async def run_cases(stream: faust.StreamT) -> None:
        counter = metrics.messages_in.labels(topic=cases.get_topic_name())
        async for event in stream.events():
            counter.inc()
            message = event.message
            last = engine.position(message.partition)
            if last is not None and message.offset <= last:
                metrics.duplicates.inc(inputs_in(event.value))  # delivered again: already applied
                continue
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
        for (name, partition), lag in (await intake.lag()).items():
            metrics.consumer_lag.labels(topic=name, partition=str(partition)).set(lag)
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
