"""Live capture: one reader thread per camera that keeps only the newest sampled frame.

A reader samples its camera every ``camera.sample_interval_s`` and holds at most one frame; the
pipeline takes it with :meth:`CameraReader.latest`.  Live streams are read from the camera's
``substream_url`` when it has one, through PyAV decoding only the frames sampled
(:mod:`detector.decoding`), or through OpenCV decoding every frame (``decoder="opencv"``).
A frame the pipeline did not take before the next one arrived is dropped and counted, so a slow
pipeline never builds up latency.  What each kind of ``Camera.source`` means (streams, snapshot
cameras, files, folders) is in :mod:`detector.sources`; how cameras are read, in docs/cameras.md.

Finite sources (files, folders) play at real-time pace unless ``realtime=False``: frame timestamps
are the reader's start time plus the position in the video (or ``index * interval`` for folders).
Live sources are stamped with the wall clock when the frame arrived.

Example::

    >>> reader = CameraReader(camera, on_status=lambda cam, up, why: print(cam, up, why))  # doctest: +SKIP
    >>> reader.start()                                                                       # doctest: +SKIP
    >>> frame = reader.latest(timeout=5)    # newest frame not taken yet, or None           # doctest: +SKIP
"""
from __future__ import annotations

import ctypes
import functools
import re
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Literal, Optional

import av
import cv2
import numpy as np
import structlog

from detector import metrics
from detector.decoding import DecodeCounters, RtspTransport, StreamDecoder, open_stream
from detector.sources import (IMAGE_SUFFIXES, SNAPSHOT_PREFIX, Frame, SourceError, folder_images, local_path,
                              open_capture, redact, sample_video, source_kind)
from nonsite.config import Camera

log = structlog.get_logger("detector.sources")  # the name the capture log lines have always had

StatusCallback = Callable[[str, bool, str], None]
Decoder = Literal["pyav", "opencv"]
STREAM_ENDED = "stream ended or read timed out"


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
FRAME_BUFFER_BYTES = 1 << 20  # buffers from this size (pictures, decoded frames) are mapped on their own


@functools.cache
def return_frame_buffers_to_the_system() -> bool:
    """Have glibc map every buffer of ``FRAME_BUFFER_BYTES`` or more on its own and unmap it when freed.

    Otherwise glibc raises its threshold to the size of the first such buffer freed (a 1080p picture is
    6 MB) and each reader thread's malloc arena then keeps several frames: measured 28 MB per 1080p
    camera after a minute, and growing, instead of 17.5 MB, flat (docs/cameras.md).  Once per process;
    False where the C library is not glibc.
    """
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, FRAME_BUFFER_BYTES))
    except (OSError, AttributeError):
        return False


def capture_url(camera: Camera) -> str:
    """What the reader opens: the camera's substream (smaller, cheaper to decode) when it has one."""
    return camera.substream_url or camera.source


class CameraReader:
    """Reads one camera in a background thread and keeps only the newest sampled frame.

    ``on_status(camera_id, online, reason)`` is called on every online/offline transition (and
    once for the first known state), from the reader's thread.  ``online`` turns true with the
    first frame, false when opening or reading fails (or a file/folder has ended).  ``decoding`` counts
    what live streams cost: frames received, decoded and used.
    """

    def __init__(self, camera: Camera, *, reconnect_initial_s: float = 1.0, reconnect_max_s: float = 30.0,
                 on_status: Optional[StatusCallback] = None, realtime: bool = True,
                 open_timeout_s: float = 10.0, read_timeout_s: float = 10.0, decoder: Decoder = "pyav",
                 rtsp_transport: RtspTransport = "tcp"):
        self.camera = camera
        self.camera_id = camera.id
        self.url = capture_url(camera)
        self.decoder = decoder
        self.rtsp_transport = rtsp_transport
        self.decoding = DecodeCounters()
        self.interval = float(camera.sample_interval_s)
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = max(reconnect_max_s, reconnect_initial_s)
        self.on_status = on_status
        self.realtime = realtime
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.online = False
        self._source_ended = False
        self.frames_read = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self.last_frame_at: Optional[float] = None
        self.last_reason = ""
        self._status_known = False
        self._slot: Optional[Frame] = None
        self._slot_changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._done = False

    # ------------------------------------------------------------ public
    def start(self) -> "CameraReader":
        return_frame_buffers_to_the_system()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"camera-{self.camera_id}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: Optional[float] = None) -> None:
        """Ask the thread to finish and wait for it (a blocked stream read ends within the read timeout)."""
        self._stop.set()
        with self._slot_changed:
            self._slot_changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.read_timeout_s + self.open_timeout_s + 5)

    @property
    def ended(self) -> bool:
        """A file or folder reached its end and its last frame was taken: nothing more will come.

        Safe to check right after :meth:`latest` returned ``None``: the last frame is never lost.
        """
        with self._slot_changed:
            return self._source_ended and self._slot is None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def latest(self, timeout: float = 0.0) -> Optional[Frame]:
        """Take the newest frame not taken yet; wait up to ``timeout`` seconds for one (0: do not wait)."""
        with self._slot_changed:
            if self._slot is None and timeout > 0:
                self._slot_changed.wait_for(lambda: self._slot is not None or self._done or self._stop.is_set(),
                                            timeout)
            frame, self._slot = self._slot, None
            return frame

    # ------------------------------------------------------------ the thread
    def _run(self) -> None:
        kind = source_kind(self.url)
        log.info("camera reader started", camera=self.camera_id, source=redact(self.url), kind=kind,
                 interval_s=self.interval, substream=self.camera.substream_url is not None, decoder=self.decoder)
        try:
            if kind in ("folder", "file"):
                self._run_finite(kind)
            else:
                self._run_live(kind)
        except Exception as exc:  # a bug must not leave a silent dead camera
            log.exception("camera reader crashed", camera=self.camera_id)
            self._set_status(False, f"reader crashed: {type(exc).__name__}: {exc}")
        finally:
            with self._slot_changed:
                self._done = True
                self._slot_changed.notify_all()

    def _run_live(self, kind: str) -> None:
        delay = self.reconnect_initial_s
        while not self._stop.is_set():
            frames_before = self.frames_read
            try:
                reason = self._pump_live(kind)
            except SourceError as exc:
                reason = str(exc)
            if self._stop.is_set():
                return
            self._set_status(False, reason)
            if self.frames_read > frames_before:
                delay = self.reconnect_initial_s
            log.info("camera reconnecting", camera=self.camera_id, in_s=round(delay, 2), reason=reason)
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self.reconnect_max_s)
            self.reconnects += 1
            metrics.CAMERA_RECONNECTS.labels(camera=self.camera_id).inc()

    def _pump_live(self, kind: str) -> str:
        """Read one connection until it fails; returns why it ended."""
        source = self.url
        if kind == "snapshot":
            return self._pump_snapshots(source[len(SNAPSHOT_PREFIX):])
        if kind == "http" and _http_content_type(source, self.open_timeout_s).startswith("image/"):
            return self._pump_snapshots(source)
        return self._pump_stream(source)

    def _pump_stream(self, source: str) -> str:
        return self._pump_opencv(source) if self.decoder == "opencv" else self._pump_pyav(source)

    def _pump_pyav(self, source: str) -> str:
        container = open_stream(source, self.open_timeout_s, self.read_timeout_s, self.rtsp_transport)
        try:
            for sample in StreamDecoder(container, self.interval, self.decoding).samples(self._stop.is_set):
                self._put(Frame(self.camera_id, sample.image, sample.arrived_at, sample.index))
        except (av.error.ExitError, EOFError):  # ExitError: the read timeout interrupted FFmpeg
            return STREAM_ENDED
        except av.error.FFmpegError as exc:
            return f"stream read failed: {str(exc).replace(source, redact(source))}"
        finally:
            container.close()
        return "stopped" if self._stop.is_set() else STREAM_ENDED

    def _pump_opencv(self, source: str) -> str:
        """Every frame decoded (``grab``), converted only when sampled: the design PyAV replaces."""
        capture = open_capture(source, self.open_timeout_s, self.read_timeout_s)
        self.decoding.mode = "opencv"
        try:
            received, due = 0, time.time()
            while not self._stop.is_set():
                if not capture.grab():
                    return STREAM_ENDED
                received += 1
                self.decoding.received += 1
                self.decoding.decoded += 1
                now = time.time()
                if now < due:
                    continue
                ok, image = capture.retrieve()
                if not ok or image is None:
                    return "frame could not be decoded"
                self.decoding.used += 1
                self._put(Frame(self.camera_id, image, now, received - 1))
                due += self.interval
                if due <= now:
                    due = now + self.interval
            return "stopped"
        finally:
            capture.release()

    def _pump_snapshots(self, url: str) -> str:
        import httpx

        with httpx.Client(timeout=self.read_timeout_s, follow_redirects=True) as client:
            count, due = 0, time.time()
            while not self._stop.is_set():
                try:
                    answer = client.get(url)
                except httpx.HTTPError as exc:
                    return f"snapshot request failed: {type(exc).__name__}: {exc}"
                if answer.status_code != 200:
                    return f"snapshot answered HTTP {answer.status_code}"
                image = cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_COLOR)
                if image is None:
                    return f"snapshot is not an image (content type {answer.headers.get('content-type', '?')})"
                self._put(Frame(self.camera_id, image, time.time(), count))
                count += 1
                due += self.interval
                now = time.time()
                if due <= now:
                    due = now + self.interval
                if self._stop.wait(due - now):
                    break
            return "stopped"

    def _run_finite(self, kind: str) -> None:
        path = local_path(self.url)
        try:
            frames = self._folder_frames(path) if kind == "folder" else self._video_frames(path)
            for frame in frames:
                if self._stop.is_set():
                    return
                if self.realtime and self._stop.wait(max(0.0, frame.timestamp - time.time())):
                    return
                self._put(frame)
        except SourceError as exc:
            self._source_ended = True
            self._set_status(False, str(exc))
            return
        self._source_ended = True
        self._set_status(False, f"end of {kind}")

    def _video_frames(self, path: Path) -> Iterator[Frame]:
        if not path.is_file():
            raise SourceError(f"{path}: video file not found")
        capture = open_capture(str(path), self.open_timeout_s, self.read_timeout_s)
        try:
            yield from sample_video(capture, self.interval, time.time(), self.camera_id)
        finally:
            capture.release()

    def _folder_frames(self, folder: Path) -> Iterator[Frame]:
        images = folder_images(folder)
        if not images:
            raise SourceError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        start = time.time()
        for number, image_path in enumerate(images):
            image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("image could not be read, skipped", camera=self.camera_id, path=str(image_path))
                continue
            yield Frame(self.camera_id, image, start + number * self.interval, number)

    # ------------------------------------------------------------ state
    def _put(self, frame: Frame) -> None:
        with self._slot_changed:
            if self._slot is not None:
                self.frames_dropped += 1
                metrics.FRAMES_DROPPED.labels(camera=self.camera_id).inc()
            self._slot = frame
            self.frames_read += 1
            self.last_frame_at = frame.timestamp
            self._slot_changed.notify_all()
        metrics.FRAMES_READ.labels(camera=self.camera_id).inc()
        if not self.online:
            self._set_status(True, "receiving frames")

    def _set_status(self, online: bool, reason: str) -> None:
        self.last_reason = reason
        if self._status_known and online == self.online:
            return
        self._status_known, self.online = True, online
        metrics.CAMERA_UP.labels(camera=self.camera_id).set(1 if online else 0)
        (log.info if online else log.warning)("camera " + ("online" if online else "offline"),
                                              camera=self.camera_id, reason=reason)
        if self.on_status is not None:
            try:
                self.on_status(self.camera_id, online, reason)
            except Exception:
                log.exception("on_status callback failed", camera=self.camera_id)


def _http_content_type(url: str, timeout_s: float) -> str:
    """The ``Content-Type`` an HTTP source answers with (lower case, no parameters)."""
    import httpx

    try:
        with httpx.stream("GET", url, timeout=timeout_s, follow_redirects=True) as answer:
            if answer.status_code != 200:
                raise SourceError(f"{redact(url)} answered HTTP {answer.status_code}")
            return re.split(r"[;\s]", answer.headers.get("content-type", ""), maxsplit=1)[0].lower()
    except httpx.HTTPError as exc:
        raise SourceError(f"cannot reach {redact(url)}: {type(exc).__name__}: {exc}") from None
