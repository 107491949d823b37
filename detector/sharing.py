"""Detector scale-out: the detectors of one consumer group share the cameras topic's shards, Kafka decides who
runs which (docs/cameras.md, "Several detectors").

Each ``nonsite detect --group G`` process runs one :class:`CameraShare`: a kafka-python consumer in group ``G``
subscribed to the cameras topic (:mod:`detector.camera_topic`), with the cooperative sticky assignor, so a
rebalance moves only the shards that must move and the others' cameras keep running.  On every assignment
the consumer reads its new partitions from the beginning (a compacted topic: one record per camera); once
it has read them to their end, :meth:`CameraShare.changed` hands the detect loop the cameras it owns now,
and the loop starts the readers it gained and stops those it lost.  No offsets are committed: the whole
partition is the state.

A detector that stops (SIGTERM) leaves the group and its shards move at once; one killed is noticed by the
group coordinator after ``detector.sharing.session_timeout_s`` without a heartbeat.  Its cameras then run
on the survivors within that timeout plus one heartbeat (a tenth of it) plus the rebalance and the reading
of the shards: the bound stated is the timeout + 5 s, measured 5.9 to 7.0 s with 6 s (docs/cameras.md).

Example::

    >>> share = CameraShare("localhost:9092", "nonsite.cameras", "city-detectors", 10.0).start()  # doctest: +SKIP
    >>> cameras = share.changed()   # None, or {camera id: Camera} when the owned set changed      # doctest: +SKIP
    >>> share.close()                                                                           # doctest: +SKIP
"""
from __future__ import annotations

import threading
from typing import Any, Optional

import structlog

from detector import metrics
from contract import DeadLetter, dead_letter
from detector.camera_topic import Table, apply_record, camera_from_entry
from nonsite.config import Camera, ConfigError

log = structlog.get_logger("detector.sharing")


class CameraShare:
    """The cameras this process owns through its consumer group; thread-safe."""

    def __init__(self, bootstrap: str, topic: str, group: str, session_timeout_s: float,
                 client_id: str = "nonsite-detector"):
        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        self.session_timeout_s = session_timeout_s
        self.client_id = client_id
        self.rebalances = 0
        self._table: Table = {}  # the assigned partitions' records
        self._offsets: dict[tuple[int, str], int] = {}  # where each camera's record is, for its dead letter
        self._refused: list[DeadLetter] = []
        self._loading: set[int] = set()  # assigned partitions not read to their end yet
        self._version = 0  # bumped when the owned cameras may have changed
        self._handed = 0  # the version :meth:`changed` last handed over (none before the first assignment)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera-share", daemon=True)
        self._consumer: Any = None
        self._new_consumer = False  # its first assignment replaces what an earlier consumer of ours held

    def start(self) -> "CameraShare":
        self._thread.start()
        return self

    def changed(self) -> Optional[dict[str, Camera]]:
        """The cameras owned now, if that may have changed since the last call and every shard is read; else None."""
        with self._lock:
            if self._loading or self._version == self._handed:
                return None
            self._handed = self._version
            records = {camera_id: (p, value, self._offsets.get((p, camera_id), 0))
                       for p, partition in self._table.items() for camera_id, value in partition.items()}
            shards = sorted(self._table)
        cameras: dict[str, Camera] = {}
        for camera_id, (partition, value, offset) in sorted(records.items()):
            try:
                cameras[camera_id] = camera_from_entry(camera_id, value)
            except ConfigError as exc:  # the others still run; the record stays until cameras.yaml is fixed
                metrics.CAMERA_RECORDS_REFUSED.inc()
                log.error("camera record refused", camera=camera_id, reason=str(exc))
                with self._lock:  # the same id at every rebalance: consumers keep one
                    self._refused.append(dead_letter(self.topic, partition, offset, str(exc), value))
        metrics.SHARDS_OWNED.set(len(shards))
        log.info("cameras owned", group=self.group, shards=shards, cameras=sorted(cameras),
                 rebalances=self.rebalances)
        return cameras

    def take_refused(self) -> list[DeadLetter]:
        """The dead letters of records no camera could be made of, since the last call (for the publisher)."""
        with self._lock:
            refused, self._refused = self._refused, []
        return refused

    def leave(self) -> None:
        """Start leaving the group (the shards move to the others at once); returns at once."""
        self._stop.set()

    def close(self, timeout: float = 3.0) -> None:
        """Leave the group, waiting at most ``timeout`` (with Kafka down the consumer is left behind, a daemon)."""
        self.leave()
        self._thread.join(timeout)

    # ------------------------------------------------------------ the consumer's thread
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except Exception as exc:  # Kafka unreachable at start, ...: the cameras owned stay as they are
                log.warning("camera group consumer failed, retrying", group=self.group,
                            error=f"{type(exc).__name__}: {exc}")
                self._stop.wait(5)

    def _consume(self) -> None:
        from kafka import KafkaConsumer
        from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

        session_ms = int(self.session_timeout_s * 1000)
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group, client_id=self.client_id,
            enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(500, session_ms // 10), max_poll_interval_ms=max(session_ms, 60_000),
            partition_assignment_strategy=(CooperativeStickyAssignor,))
        self._consumer, self._new_consumer = consumer, True
        try:
            # the topic's metadata before joining: a group leader without it assigned none of its partitions, and in
            # CI a detector so started got no camera in three minutes
            consumer.partitions_for_topic(self.topic)
            consumer.subscribe([self.topic], listener=_listener(self))
            while not self._stop.is_set():
                for tp, records in consumer.poll(timeout_ms=300).items():
                    with self._lock:
                        if tp.partition in self._table:
                            for record in records:
                                apply_record(self._table[tp.partition], record.key, record.value)
                                if record.key is not None:
                                    self._offsets[(tp.partition, record.key.decode())] = record.offset
                self._check_loaded(consumer)
        finally:
            _close_within(consumer, 2.0)

    def _check_loaded(self, consumer: Any) -> None:
        with self._lock:
            loading = set(self._loading)
        if not loading:
            return
        from kafka import TopicPartition

        tps = [TopicPartition(self.topic, p) for p in sorted(loading)]
        ends = consumer.end_offsets(tps)
        done = {tp.partition for tp in tps if consumer.position(tp) >= ends[tp]}
        if done:
            with self._lock:
                self._loading -= done
                self._version += 1

    def _assigned(self, partitions: list[int]) -> None:
        with self._lock:
            if self._new_consumer:  # after a failed consumer: it may have lost shards without a callback
                for p in set(self._table) - set(partitions):
                    self._table.pop(p)
                self._new_consumer = False
            for p in partitions:
                self._table[p] = {}
            self._loading |= set(partitions)
            self._version += 1
        self.rebalances += 1
        metrics.CAMERA_REBALANCES.inc()
        log.info("camera shards assigned", group=self.group, gained=sorted(partitions))

    def _revoked(self, partitions: list[int], lost: bool) -> None:
        with self._lock:
            for p in partitions:
                self._table.pop(p, None)
            self._loading -= set(partitions)
            self._version += 1
        if partitions:
            log.info("camera shards " + ("lost" if lost else "revoked"), group=self.group, shards=sorted(partitions))


def _listener(share: CameraShare) -> Any:
    from kafka import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):
        """kafka-python's rebalance callbacks, forwarded to the share (from the consumer's thread)."""

        def on_partitions_assigned(self, assigned) -> None:
            if assigned:
                share._consumer.seek_to_beginning(*assigned)
                share._assigned([tp.partition for tp in assigned])

        def on_partitions_revoked(self, revoked) -> None:
            share._revoked([tp.partition for tp in revoked], lost=False)

        def on_partitions_lost(self, lost) -> None:
            share._revoked([tp.partition for tp in lost], lost=True)

    return Listener()


def _close_within(consumer: Any, timeout_s: float) -> None:
    """Close the consumer (leaving the group) in a helper thread: with Kafka down close() would wait on retries."""
    closer = threading.Thread(target=lambda: _quietly(consumer.close), name="camera-share-close", daemon=True)
    closer.start()
    closer.join(timeout_s)


def _quietly(call) -> None:
    try:
        call()
    except Exception:
        pass
