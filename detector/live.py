"""The live loop of ``nonsite detect``: the readers of the cameras this process runs -> one pipeline -> the
evidence stage (pictures stored on a thread of its own, :mod:`detector.evidence_stage`) -> Kafka.

Without a group every enabled camera runs for the life of the process.  With ``detector.sharing.group``
(:mod:`detector.sharing`) the set follows the consumer group: :meth:`LiveCameras.run` starts the readers of
cameras gained and stops those lost, and the pipeline keeps the state of the cameras that stay.

A stop (SIGTERM, SIGINT) ends the process within :data:`STOP_WITHIN_S` even while Kafka is down: the group is
left, the readers are stopped together, the evidence stage finishes what it holds, and what Kafka has not
acknowledged is written to the spool on disk, sent at the next start (:func:`shutdown`).

Example::

    >>> live = LiveCameras(pipeline, lambda camera: CameraReader(camera))           # doctest: +SKIP
    >>> live.run({c.id: c for c in city.cameras})                                    # doctest: +SKIP
    (['cam-01', 'cam-02'], [])
    >>> stage = EvidenceStage(pipeline.finish, publisher.publish, stop=stop).start()   # doctest: +SKIP
    >>> detect_loop(pipeline, live, stage, stop=stop, once=False)                     # doctest: +SKIP
    >>> shutdown(live, publisher, evidence=stage)                                     # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable, Mapping

import structlog

from detector import metrics
from detector.camera_reader import CameraReader
from nonsite.config import Camera

log = structlog.get_logger("detector.live")

STOP_WITHIN_S = 8.0  # under the 10 s a supervisor (systemd, Docker) waits before SIGKILL
READERS_STOP_S = 2.0  # a reader blocked in a read is left behind after this (its thread is a daemon)
PUBLISHER_RESERVE_S = 4.0  # of the stop's time, what the evidence stage's drain leaves to the publisher and group


class LiveCameras:
    """The camera readers of this process and their status changes, not yet published."""

    def __init__(self, pipeline, make_reader: Callable[[Camera], CameraReader]):
        self.pipeline = pipeline
        self.make_reader = make_reader
        self.readers: dict[str, CameraReader] = {}
        self._transitions: list[tuple[str, bool, str]] = []
        self._lock = threading.Lock()

    def on_status(self, camera_id: str, online: bool, reason: str) -> None:
        """A reader's callback (from its thread)."""
        with self._lock:
            self._transitions.append((camera_id, online, reason))

    def take_transitions(self) -> list[tuple[str, bool, str]]:
        with self._lock:
            changes, self._transitions = self._transitions, []
        return changes

    def run(self, cameras: Mapping[str, Camera]) -> tuple[list[str], list[str]]:
        """Run exactly ``cameras`` from now on; returns ``(gained, lost)`` camera ids (a changed config is both)."""
        lost = sorted(k for k, reader in self.readers.items() if cameras.get(k) != reader.camera)
        for camera_id in lost:
            self.readers.pop(camera_id).stop(timeout=0)  # not waited for: the others keep running meanwhile
            with contextlib.suppress(KeyError):
                metrics.CAMERA_UP.remove(camera_id)  # another detector reads it now
        self.pipeline.set_cameras(cameras.values())
        gained = sorted(k for k in cameras if k not in self.readers)
        for camera_id in gained:
            self.readers[camera_id] = self.make_reader(cameras[camera_id]).start()
        metrics.CAMERAS_OWNED.set(len(self.readers))
        return gained, lost

    def stop(self, timeout_s: float = READERS_STOP_S) -> None:
        """Stop every reader together, waiting at most ``timeout_s`` in all."""
        deadline = time.monotonic() + timeout_s
        for reader in self.readers.values():
            reader.stop(timeout=0)
        for reader in self.readers.values():
            reader.stop(timeout=max(0.0, deadline - time.monotonic()))


def detect_loop(pipeline, live: LiveCameras, publisher, stop: threading.Event, once: bool, share=None) -> None:
    """Take the newest frame of every camera, run them as one batch, publish; until stopped (or all ended).

    ``publisher``: the evidence stage (:class:`~detector.evidence_stage.EvidenceStage`), which takes the pipeline's
    pending detections and every other record in one queue, and publishes them in that order."""
    known: dict[str, tuple[bool, str]] = {}  # camera id -> (online, reason) as its reader last reported
    while not stop.is_set():
        owned = share.changed() if share is not None else None
        if owned is not None:
            gained, lost = live.run(owned)
            for camera_id in lost:
                known.pop(camera_id, None)
            log.info("cameras running", gained=gained, lost=lost, running=sorted(live.readers))
            for letter in share.take_refused():
                publisher.publish(letter)
        now = time.time()
        for camera_id, online, reason in live.take_transitions():
            if camera_id not in pipeline.cameras:
                continue  # from a reader stopped since: the camera runs elsewhere now
            known[camera_id] = (online, reason)
            publisher.publish(pipeline.status(camera_id, now, "online" if online else "offline", reason))
        frames = [f for f in (r.latest() for r in live.readers.values()) if f is not None]
        if frames:
            pending = pipeline.analyse(frames)
            analysed = time.time()  # the evidence is stored after this, on the evidence stage's thread
            for frame in frames:
                metrics.SAMPLE_AGE.labels(camera=frame.camera_id).observe(max(0.0, analysed - frame.timestamp))
            for event in pending:
                publisher.publish(event)  # may wait while the evidence stage is full
        for status in pipeline.due_statuses(now, known):
            publisher.publish(status)
        if once and not frames and all(r.ended for r in live.readers.values()):
            break  # a file reader sets ``ended`` after handing over its last frame
        if not frames:
            stop.wait(0.05)


def shutdown(live: LiveCameras, publisher, share=None, within_s: float = STOP_WITHIN_S, evidence=None) -> None:
    """Leave the group, stop the readers, let the evidence stage finish what it holds (its late ones with the
    originals alone, :meth:`~detector.evidence_stage.EvidenceStage.close`), hand Kafka what it takes in the time
    left; the rest goes to the spool."""
    deadline = time.monotonic() + within_s

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    log.info("detector stopping", within_s=within_s, kafka_up=publisher.kafka_up, cameras=len(live.readers))
    if share is not None:
        share.leave()  # its thread leaves the group meanwhile
    live.stop(min(READERS_STOP_S, left()))
    if evidence is not None:
        evidence.close(drain_s=max(0.0, left() - PUBLISHER_RESERVE_S))
    # Kafka known to be down: straight to the spool, rather than waiting for it until the deadline
    publisher.close(timeout=max(0.5, left() - 2.5) if publisher.kafka_up else 0.5)
    if share is not None:
        share.close(timeout=min(2.0, left()))
