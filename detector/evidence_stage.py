"""The evidence stage of the live detector: a violation's pictures are drawn, masked and stored on a thread of
their own, so the pipeline thread goes on with every camera's frames meanwhile.

:meth:`detector.pipeline.Pipeline.analyse` returns :class:`Pending` detections: the event, and the pictures still
to store (the frame and the first-seen frame, kept by reference: nothing writes to a frame after the pipeline's
privacy blackout, and the readers decode each frame into a new array).  :class:`EvidenceStage` takes them, with
every other record of the detect loop, in one FIFO: one worker thread stores a detection's pictures (with their
masked copies, :mod:`detector.masking`) and only then hands it to the publisher, so no record overtakes an
earlier one, of its camera or any other.  A record without pictures waits only for those ahead of it.

The worker runs at a lower CPU priority (:data:`NICE`): on a small box the model, not the pictures, gets the
cores first, and a render only takes what the pipeline leaves.

Back-pressure: at most ``capacity`` detections with pictures wait; the detect loop then waits for room (no event
or picture is ever dropped).  Once ``stop`` is set it no longer waits: the stop's drain (:meth:`EvidenceStage.close`)
takes what is queued.

Stopping (:meth:`EvidenceStage.close`): the worker goes on until the queue is empty or ``drain_s`` has passed.
What is left then, the detection being rendered included, is finished on the closing thread with the originals
alone (a few ms a picture: no face or plate search) and ``masked: {}`` (docs/privacy.md: a copy that is missing
is not replaced by the original, so such a picture is shown to the case's handlers only), logged with their event
ids, and handed to the publisher: it reaches Kafka or the spool like any event.

Example::

    >>> stage = EvidenceStage(pipeline.finish, publisher.publish, stop=stop).start()   # doctest: +SKIP
    >>> for pending in pipeline.analyse(frames):                                         # doctest: +SKIP
    ...     stage.publish(pending)       # returns at once unless `capacity` renders wait
    >>> stage.close(drain_s=3.0)         # at SIGTERM, before the publisher's close      # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional, Union

import msgspec
import numpy as np
import structlog

from contract import Detection, Evidence, Record
from contract.fields import EvidenceKind
from detector import metrics
from detector.annotate import encode_jpeg
from detector.masking import EvidenceMasker, Render
from nonsite.evidence import EvidenceStore

log = structlog.get_logger("detector.evidence")

CAPACITY = 16  # detections with pictures waiting: at 1-2 s of CPU each, a burst of a street of cameras
# Added to the worker's nice value.  Linux keeps it per thread, and the threads the face model's onnxruntime
# session starts (on this thread, at its first render) inherit it.
NICE = 10


@dataclass(frozen=True)
class Picture:
    """One evidence picture still to store: ``render(clean)``, or ``clean`` itself."""

    clean: np.ndarray
    kind: EvidenceKind
    render: Optional[Render] = None
    plate_picture: bool = False  # a number plate's crop: its public copy is masked whole


@dataclass(frozen=True)
class Pending:
    """A detection whose pictures are not stored yet; its ``evidence`` is filled from ``pictures`` in order."""

    detection: Detection
    pictures: tuple[Picture, ...] = ()


Finish = Callable[[Pending, bool], Detection]  # (pending, with masked copies) -> the detection with its evidence
Item = Union[Pending, Record]


class EvidenceWriter:
    """Stores a :class:`Pending` detection's pictures: the originals, and their masked copies when ``masker``."""

    def __init__(self, store: EvidenceStore, masker: Optional[EvidenceMasker] = None) -> None:
        self.store, self.masker = store, masker

    def finish(self, pending: Pending, masked: bool = True) -> Detection:
        """The detection with its evidence records; ``masked=False``: the originals only (``masked: {}``)."""
        if not pending.pictures:
            return pending.detection
        evidence = [self.put(picture, masked) for picture in pending.pictures]
        return msgspec.structs.replace(pending.detection, evidence=evidence)

    def put(self, picture: Picture, masked: bool = True) -> Evidence:
        if masked and self.masker is not None:
            return self.masker.put(picture.clean, picture.kind, picture.render, picture.plate_picture)
        image = picture.render(picture.clean) if picture.render else picture.clean
        return self.store.put(encode_jpeg(image), picture.kind)


class EvidenceStage:
    """One FIFO of the detect loop's records and one thread that stores pictures, then publishes in order."""

    def __init__(self, finish: Finish, publish: Callable[[Record], None], capacity: int = CAPACITY,
                 stop: Optional[threading.Event] = None) -> None:
        self.finish, self.deliver, self.capacity, self.stop = finish, publish, max(1, capacity), stop
        self._queue: deque[Item] = deque()
        self._renders = 0  # queued items with pictures
        self._current: Optional[Item] = None  # taken by the worker, not yet published
        self._closing = False
        self._abandoned = False  # the closer took over what is left: the worker publishes nothing more
        self._state = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="evidence", daemon=True)

    def start(self) -> "EvidenceStage":
        self.thread.start()
        return self

    @property
    def depth(self) -> int:
        """Records not yet handed to the publisher, the one being rendered included."""
        with self._state:
            return len(self._queue) + (self._current is not None)

    # ------------------------------------------------------------ the detect loop's side
    def publish(self, item: Item) -> None:
        """Queue a record (a :class:`Pending` detection, or any ready record) behind everything queued so far.

        Waits while ``capacity`` detections with pictures are queued, unless ``stop`` is set."""
        renders = _renders(item)
        with self._state:
            if self._abandoned:
                raise RuntimeError("EvidenceStage is closed")
            if renders and self._renders >= self.capacity:
                self._wait_for_room()
            self._queue.append(item)
            self._renders += renders
            self._state.notify_all()
            self._gauge()

    def _wait_for_room(self) -> None:
        waited = time.perf_counter()
        while self._renders >= self.capacity and not self._abandoned and not (self.stop and self.stop.is_set()):
            self._state.wait(0.1)  # woken when the worker takes an item; the timeout only sees ``stop``
        metrics.EVIDENCE_WAITED.inc(time.perf_counter() - waited)

    def drain(self, timeout: Optional[float] = None) -> bool:
        """Wait until everything queued is published (or ``timeout``, or ``stop``); True when it is."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._state:
            while self._queue or self._current is not None:
                if self.stop is not None and self.stop.is_set():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._state.wait(0.1 if left is None else min(0.1, left))
            return True

    def close(self, drain_s: float) -> int:
        """Let the worker publish what is queued for up to ``drain_s``; then finish the rest here with the
        originals only, and publish it in order.  Returns how many records were finished so."""
        with self._state:
            self._closing = True
            self._state.notify_all()
            self._state.wait_for(lambda: not self._queue and self._current is None, timeout=max(0.0, drain_s))
            left = ([self._current] if self._current is not None else []) + list(self._queue)
            self._abandoned = True
            self._queue.clear()
            self._current, self._renders = None, 0
            self._state.notify_all()
            self._gauge()
        late = [item for item in left if _renders(item)]
        if late:
            log.warning("evidence stored without masked copies at the stop", events=len(late), drain_s=drain_s,
                        event_ids=[item.detection.event_id for item in late])
        for item in left:
            self.deliver(self._finished(item, masked=False))
        return len(left)

    # ------------------------------------------------------------ the worker
    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # not on every platform: then the same priority
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + NICE))
        while True:
            with self._state:
                self._state.wait_for(lambda: self._queue or self._closing)
                if self._abandoned or not self._queue:
                    return
                item = self._current = self._queue.popleft()
                self._renders -= _renders(item)
                self._state.notify_all()  # room for the detect loop
            record = self._finished(item, masked=True)
            with self._state:
                if self._abandoned:
                    return  # the closer published this one (originals only) in its place
                self.deliver(record)
                self._current = None
                self._state.notify_all()
                self._gauge()

    def _finished(self, item: Item, masked: bool) -> Record:
        """The record to publish: a pending detection with its evidence stored.  A failure to store it is logged
        and the event goes out all the same (with the originals alone, or without pictures)."""
        if not isinstance(item, Pending):
            return item
        started = time.perf_counter()
        try:
            detection = self.finish(item, masked)
        except Exception:  # a bug or a full disk must not stop every later event
            log.exception("evidence not stored", event_id=item.detection.event_id, masked=masked)
            try:
                detection = self.finish(item, False) if masked else item.detection
            except Exception:
                log.exception("evidence not stored, the event goes without it", event_id=item.detection.event_id)
                detection = item.detection
        if item.pictures:
            metrics.EVIDENCE_RENDER_SECONDS.observe(time.perf_counter() - started)
        return detection

    def _gauge(self) -> None:
        metrics.EVIDENCE_QUEUE.set(len(self._queue) + (self._current is not None))


def _renders(item: Item) -> int:
    return 1 if isinstance(item, Pending) and item.pictures else 0
