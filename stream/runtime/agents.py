"""The agents, one per concern, and the tables they fill.

* intake (not an agent: a batching aiokafka consumer run as a service of this worker, see
  :mod:`stream.runtime.intake_consumer`): validates every input message (bad ones to the dead-letter topic)
  and routes it, keyed by district, to the internal cases topic, one message per district per poll;
* ``cases``: the case engine (:mod:`stream.domain.engine`) over the cases topic — dedup, dispatch,
  disposal, camera verification, first offences and statistics — publishing incidents, tasks,
  case events and alerts.  Its state is one changelog-backed table, ``case_state``, holding named
  views (``cases``, ``open_cases``, ``site_cases``, ``camera_states``...), so that the writes of one
  cases-topic message reach the changelog together and in order (:mod:`stream.state.journal`);
* ``clock`` (timer, leader only): a tick per district every ``stream.tick_s`` from the injected clock;
* ``lag`` (timer): consumer lag into the metrics.
"""
from __future__ import annotations

from typing import Callable

import faust
from prometheus_client import CollectorRegistry
from faust.sensors.prometheus import setup_prometheus_sensors

import structlog

from contract import DeadLetter, to_iso
from contract import wire
from contract.deadletter import dead_letter, failure_reason
from nonsite.config import City
from stream.runtime.changelog import ChangelogStore, read_range
from stream.runtime.faust_fixes import keep_undelivered_records, make_flush_complete, store_reader
from stream.runtime.topics import STATE_TABLE, cases_topic_name, changelog_topic_name, partition_for
from stream.domain.dedup import CityMap
from stream.domain.engine import Engine, Outputs, Tables
from stream.domain.intake import Envelope, unpack
from stream.runtime.intake_consumer import Intake
from stream.runtime.metrics import StreamMetrics

log = structlog.get_logger("nonsite.stream")
RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


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
    keep_undelivered_records(metrics.rewound.inc)
    state = app.Table(STATE_TABLE, default=None, partitions=partitions)
    changelog = ChangelogStore(state.data, changelog_topic_name(city, STATE_TABLE))
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
