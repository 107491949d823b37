"""Publishing: detector records to Kafka, in order, with an on-disk spool while Kafka is away.

:meth:`EventPublisher.publish` never blocks on Kafka and never raises because Kafka is down.  One
background thread is the only sender:

* **direct** (Kafka healthy, spool empty): records wait in memory and are sent in batches
  (``acks=all``, idempotent, gzip); every future is checked, because ``flush()`` alone returns even
  when batches expired.
* **spooling**: when a send fails, the batch's undelivered records and everything queued behind
  them move to the :class:`~detector.spool.Spool` in order, and every new record goes behind them
  into the spool, so per-camera order is kept.  The thread probes the bootstrap servers with
  exponential backoff, drains the spool in order when Kafka answers, and returns to direct mode
  when the spool is empty.

Delivery is at least once: if a batch fails part way, its records from the first failure on are
sent again (consumers deduplicate by ``event_id``).  Records that do not fit in the spool are
refused, counted (``nonsite_detector_spool_overflow_total``) and logged one line each with their
event id.  A spool left by a previous run is drained first.

Example::

    >>> publisher = EventPublisher("localhost:9092", city.kafka.topics, Path("var/spool"), 256 << 20)  # doctest: +SKIP
    >>> publisher.publish(detection)         # Detection -> topics.detections, key = camera id
    >>> publisher.flush(10)                  # True when everything so far is in Kafka
    True
    >>> publisher.close()
"""
from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from itertools import islice
from pathlib import Path
from typing import Optional, Sequence

import structlog

from detector import metrics
from detector.spool import Spool, SpoolRecord
from nonsite.config import Topics
from nonsite.kafka import clients
from contract import CameraStatus, DeadLetter, Record, Detection

log = structlog.get_logger("detector.publisher")


class EventPublisher:
    """Sends :class:`Detection` and :class:`CameraStatus` records keyed by camera id."""

    def __init__(self, bootstrap: str, topics: Topics, spool_dir: Path, spool_max_bytes: int, *,
                 delivery_timeout_ms: int = 15_000, linger_ms: int = 5, batch_records: int = 500,
                 probe_initial_s: float = 0.5, probe_max_s: float = 10.0, client_id: str = "nonsite-detector"):
        self.bootstrap = bootstrap
        self.topics = topics
        self.delivery_timeout_ms = int(delivery_timeout_ms)
        self.linger_ms = int(linger_ms)
        self.batch_records = batch_records
        self.probe_initial_s = probe_initial_s
        self.probe_max_s = max(probe_max_s, probe_initial_s)
        self.client_id = client_id
        self.overflowed = 0
        self.delivered = 0
        self._spool = Spool(Path(spool_dir), spool_max_bytes)
        self._memory: deque[SpoolRecord] = deque()
        self._direct = self._spool.depth == 0
        self._busy = False  # the sender holds a batch it has not resolved yet
        self._closing = False
        self._kafka_up: Optional[bool] = None
        self._producer = None
        self._state = threading.Condition()
        self._update_gauges()
        self._thread = threading.Thread(target=self._run, name="event-publisher", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ public
    @property
    def spool_depth(self) -> int:
        """Records waiting on disk."""
        return self._spool.depth

    @property
    def pending(self) -> int:
        """Records not yet acknowledged by Kafka (memory and spool)."""
        return len(self._memory) + self._spool.depth

    @property
    def kafka_up(self) -> bool:
        return bool(self._kafka_up)

    def topic_for(self, record: Record) -> str:
        if isinstance(record, Detection):
            return self.topics.detections
        if isinstance(record, CameraStatus):
            return self.topics.camera_status
        if isinstance(record, DeadLetter):  # a cameras-topic record no camera can be made of (detector.sharing)
            return self.topics.dead_letter
        raise TypeError(f"EventPublisher publishes Detection, CameraStatus and DeadLetter, not {type(record).__name__}")

    def publish(self, record: Record) -> None:
        """Queue one record for Kafka (key = its camera id; a dead letter's: its source topic); returns at once."""
        key = record.topic if isinstance(record, DeadLetter) else record.camera_id
        item = SpoolRecord(self.topic_for(record), key.encode(), record.to_json())
        with self._state:
            if self._closing:
                raise RuntimeError("EventPublisher is closed")
            if self._direct:
                self._memory.append(item)
            else:
                self._to_spool([item])
            self._state.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until everything published so far is acknowledged by Kafka; False when time ran out.

        Records still waiting are not lost: they stay queued (in memory or in the spool).
        """
        deadline = time.monotonic() + timeout
        with self._state:
            self._state.notify_all()
            return self._state.wait_for(lambda: not self._memory and not self._spool.depth and not self._busy,
                                        max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what Kafka takes within ``timeout``, keep the rest in the spool for the next start."""
        self.flush(timeout)
        with self._state:
            self._closing = True
            self._state.notify_all()
        producer = self._producer
        if producer is not None and self._busy:
            _abort(producer)  # fails the batch in flight, so the sender lets go of it now
        self._thread.join(self.delivery_timeout_ms / 1000 + 10)
        with self._state:
            if self._memory:
                self._to_spool(list(self._memory))
                self._memory.clear()
        if self._producer is not None:
            _close_quietly(self._producer, timeout=2)
            self._producer = None
        self._spool.close()
        self._update_gauges()
        log.info("publisher closed", delivered=self.delivered, spooled=self._spool.depth,
                 overflowed=self.overflowed)

    # ------------------------------------------------------------ the sender thread
    def _run(self) -> None:
        backoff = self.probe_initial_s
        while True:
            with self._state:
                self._state.wait_for(lambda: self._closing or self._memory or self._spool.depth, 1.0)
                if self._closing:
                    return
                from_memory = self._direct
                batch = list(islice(self._memory, self.batch_records)) if from_memory \
                    else self._spool.peek(self.batch_records)
                if not batch:
                    if not from_memory and not self._spool.depth:
                        self._direct = True
                    continue
                self._busy = True
            delivered = self._deliver(batch)
            with self._state:
                self._busy = False
                if from_memory:
                    for _ in range(delivered):
                        self._memory.popleft()
                    if delivered < len(batch):
                        self._direct = False
                        self._to_spool(list(self._memory))
                        self._memory.clear()
                else:
                    self._spool.commit(delivered)
                    self._direct = not self._spool.depth
                self._update_gauges()
                self._state.notify_all()
            if delivered == len(batch):
                backoff = self.probe_initial_s
                continue
            with self._state:
                if self._state.wait_for(lambda: self._closing, backoff):
                    return
            backoff = min(backoff * 2, self.probe_max_s)

    def _deliver(self, batch: Sequence[SpoolRecord]) -> int:
        """Send a batch and wait for every acknowledgement; returns how many from the start are done.

        A record Kafka can never take (larger than the broker accepts) is logged, counted and passed
        over, so it cannot block everything queued behind it.
        """
        if not self._kafka_up and not self._reachable():
            self._set_kafka_up(False, "no bootstrap server accepts connections")
            return 0
        try:
            producer = self._ensure_producer()
        except Exception as exc:
            self._set_kafka_up(False, f"producer could not start: {type(exc).__name__}: {exc}")
            return 0
        from kafka.errors import MessageSizeTooLargeError

        futures, error = [], None
        for record in batch:
            try:
                futures.append(producer.send(record.topic, key=record.key, value=record.value))
            except MessageSizeTooLargeError as exc:
                futures.append(exc)
            except Exception as exc:  # metadata not available within max_block_ms, producer closed, ...
                error = exc
                break
        try:
            producer.flush(timeout=self.delivery_timeout_ms / 1000 + 5)
        except Exception:
            pass  # the futures below say what happened
        done = 0
        for record, future in zip(batch, futures):
            if isinstance(future, Exception):
                metrics.PUBLISH_ERRORS.inc()
                log.error("event can never be sent, dropped", topic=record.topic, event_id=_event_id(record.value),
                          bytes=len(record.value), error=str(future))
                done += 1
                continue
            try:
                future.get(timeout=self.delivery_timeout_ms / 1000 + 5)
            except Exception as exc:
                error = exc
                break
            done += 1
            self.delivered += 1
            metrics.EVENTS_PUBLISHED.labels(topic=record.topic).inc()
        if done < len(batch):
            metrics.PUBLISH_ERRORS.inc(len(batch) - done)
            self._producer = None
            _abort(producer)  # a fresh producer (new producer id) after an outage
            self._set_kafka_up(False, f"{type(error).__name__}: {error}" if error else "send failed")
        else:
            self._set_kafka_up(True, "acknowledged")
        return done

    def _ensure_producer(self):
        if self._producer is None:
            self._producer = clients.producer(  # acks=all, idempotent
                self.bootstrap.split(","), client_id=self.client_id, compression_type="gzip", linger_ms=self.linger_ms,
                delivery_timeout_ms=self.delivery_timeout_ms,
                request_timeout_ms=max(1000, min(30_000, self.delivery_timeout_ms - self.linger_ms - 1)),
                max_block_ms=max(1000, min(10_000, self.delivery_timeout_ms)),
                bootstrap_timeout_ms=max(1000, min(10_000, self.delivery_timeout_ms)),
                reconnect_backoff_max_ms=1000)
        return self._producer

    def _reachable(self) -> bool:
        """Does any bootstrap server accept a TCP connection? Cheap, and fails fast while Kafka is down."""
        for server in self.bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                with socket.create_connection((host or "localhost", int(port)), timeout=2):
                    return True
            except (OSError, ValueError):
                continue
        return False

    # ------------------------------------------------------------ state
    def _to_spool(self, items: list[SpoolRecord]) -> None:
        """Append in order; count and log what does not fit.  Caller holds ``self._state``."""
        accepted = self._spool.append(items)
        for item in items[accepted:]:
            self.overflowed += 1
            metrics.SPOOL_OVERFLOW.inc()
            log.error("spool full, event dropped", topic=item.topic, camera=(item.key or b"").decode(),
                      event_id=_event_id(item.value), spool_records=self._spool.depth,
                      spool_bytes=self._spool.pending_bytes, spool_max_bytes=self._spool.max_bytes)
        self._update_gauges()

    def _update_gauges(self) -> None:
        metrics.SPOOL_DEPTH.set(self._spool.depth)
        metrics.SPOOL_BYTES.set(self._spool.pending_bytes)

    def _set_kafka_up(self, up: bool, reason: str) -> None:
        if up == self._kafka_up:
            return
        self._kafka_up = up
        metrics.KAFKA_UP.set(1 if up else 0)
        if up:
            log.info("kafka reachable, sending", bootstrap=self.bootstrap, spooled=self._spool.depth)
        else:
            log.warning("kafka unreachable, spooling events", bootstrap=self.bootstrap, reason=reason)


def _event_id(value: bytes) -> str:
    try:
        return str(json.loads(value).get("event_id", "?"))
    except (ValueError, AttributeError):
        return "?"


def _close_quietly(producer, timeout: float = 0) -> None:
    try:
        producer.close(timeout=timeout)
    except Exception:
        pass


def _abort(producer) -> None:
    """Close now, failing whatever is unacknowledged (``close(0)`` alone raises when batches are pending)."""
    try:
        producer.close(timeout=0)
    except Exception:
        sender = getattr(producer, "_sender", None)  # kafka-python internals: no public forced close
        try:
            if sender is not None:
                sender.force_close()
        except Exception:
            pass
