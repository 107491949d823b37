"""Capture: one reader thread per camera that keeps only the newest sampled frame.

A reader samples its camera every ``camera.sample_interval_s`` and holds at most one frame; the
pipeline takes it with :meth:`CameraReader.latest`.  A frame the pipeline did not take before the
next one arrived is dropped and counted, so a slow pipeline never builds up latency.

How ``Camera.source`` is read:

==================================  =========================================================
``rtsp://``, ``rtsps://``,          live stream through OpenCV's FFmpeg backend, with open and
``rtmp://``, ``rtmps://``, ``udp``  read timeouts; reconnects with exponential backoff
``snapshot+http(s)://URL``          snapshot camera: ``GET URL`` once per interval, decode the image
``http(s)://URL``                   decided by the answer's ``Content-Type`` at each connect:
                                    ``image/*`` is a snapshot camera as above; anything else
                                    (``multipart/x-mixed-replace`` MJPEG, ``video/*``, HLS) is a
                                    stream through FFmpeg
a folder (or ``file://`` folder)    every image in it, in name order, one per interval; then ends
a file (or ``file://`` file)        a video file, sampled every interval of *video* time; then ends
==================================  =========================================================

RTSP goes over TCP by default (OpenCV's default).  A camera or server that only offers UDP
needs ``OPENCV_FFMPEG_CAPTURE_OPTIONS="rtsp_transport;udp"`` in the environment (OpenCV's own
setting; it replaces OpenCV's defaults for every FFmpeg capture of the process).

Finite sources (files, folders) play at real-time pace unless ``realtime=False``: frame timestamps
are the reader's start time plus the position in the video (or ``index * interval`` for folders).
Live sources are stamped with the wall clock when the frame arrived.

Example::

    >>> reader = CameraReader(camera, on_status=lambda cam, up, why: print(cam, up, why))  # doctest: +SKIP
    >>> reader.start()                                                                       # doctest: +SKIP
    >>> frame = reader.latest(timeout=5)    # newest frame not taken yet, or None           # doctest: +SKIP
    >>> for frame in iter_file_frames("clip.mp4", 2.0, start_epoch=1.7e9): ...               # doctest: +SKIP
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np
import structlog

from detector import metrics
from nonsite.config import Camera

log = structlog.get_logger("detector.sources")

StatusCallback = Callable[[str, bool, str], None]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "rtp", "udp", "tcp", "srt")
SNAPSHOT_PREFIX = "snapshot+"
SEEK_MIN_FRAMES = 250  # skip gaps at least this long by seeking instead of decoding every frame
DEFAULT_FPS = 25.0


class SourceError(Exception):
    """A source that cannot be opened or read; ``str()`` is the one line for logs and status events."""


@dataclass
class Frame:
    """One sampled frame.

    ``image`` is BGR uint8 (OpenCV's layout); ``timestamp`` is epoch seconds; ``index`` is the
    frame's position in its source: the video frame number for files, the image number (from 0)
    for folders, the count of frames received for streams and snapshot cameras.
    """

    camera_id: str
    image: np.ndarray
    timestamp: float
    index: int


# ------------------------------------------------------------------ what a source string means
def source_kind(source: str) -> str:
    """``stream``, ``snapshot``, ``http`` (decided by content type at connect), ``folder`` or ``file``."""
    scheme = urlsplit(source).scheme.lower()
    if scheme.startswith(SNAPSHOT_PREFIX):
        return "snapshot"
    if scheme in ("http", "https"):
        return "http"
    if scheme in STREAM_SCHEMES:
        return "stream"
    path = local_path(source)
    return "folder" if path.is_dir() else "file"


def resolve_source(source: str, base: Path) -> str:
    """A relative file or folder path made relative to ``base`` (e.g. the project); URLs unchanged.

    >>> resolve_source(".cache/demo/cam-01.mp4", Path("/srv/nonsite"))
    '/srv/nonsite/.cache/demo/cam-01.mp4'
    >>> resolve_source("rtsp://10.0.0.5/1", Path("/srv/nonsite"))
    'rtsp://10.0.0.5/1'
    """
    if source_kind(source) not in ("file", "folder"):
        return source
    path = local_path(source)
    return str(path if path.is_absolute() else Path(base) / path)


def local_path(source: str) -> Path:
    return Path(source[len("file://"):] if source.startswith("file://") else source)


def redact(url: str) -> str:
    """The URL without a password, for logs: ``rtsp://admin:secret@cam/1`` -> ``rtsp://admin:***@cam/1``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def folder_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, in name order."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def open_capture(source: str, open_timeout_s: float = 10.0, read_timeout_s: float = 10.0) -> cv2.VideoCapture:
    """An OpenCV FFmpeg capture with timeouts, so a dead stream cannot block forever."""
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
              cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)]
    capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"cannot open {redact(source)} with FFmpeg")
    return capture


def video_fps(capture: cv2.VideoCapture) -> float:
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if fps and 0 < fps < 1000 else DEFAULT_FPS


# ------------------------------------------------------------------ offline: a video file at video time
def iter_file_frames(path: str | Path, sample_interval_s: float, start_epoch: float = 0.0,
                     camera_id: Optional[str] = None) -> Iterator[Frame]:
    """Frames of a video file every ``sample_interval_s`` of video time (the first frame included).

    The frame taken for target time ``k * interval`` is the first whose position ``index / fps``
    is at or after it; its timestamp is ``start_epoch + index / fps``.  Raises :class:`SourceError`
    when the file cannot be opened.
    """
    if sample_interval_s <= 0:
        raise ValueError("sample_interval_s must be positive")
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: video file not found")
    capture = open_capture(str(path))
    try:
        yield from _sample_video(capture, sample_interval_s, start_epoch, camera_id or path.stem)
    finally:
        capture.release()


def _sample_video(capture: cv2.VideoCapture, interval: float, start_epoch: float,
                  camera_id: str) -> Iterator[Frame]:
    fps = video_fps(capture)
    index, due = -1, 0.0  # index of the last frame grabbed; video time of the next sample
    while True:
        wanted = max(index + 1, _first_index_at(due, fps))
        if wanted - index > SEEK_MIN_FRAMES and _seek(capture, wanted):
            index = wanted - 1
        while index + 1 < wanted:
            if not capture.grab():
                return
            index += 1
        if not capture.grab():
            return
        index += 1
        ok, image = capture.retrieve()
        position = index / fps
        while due <= position + 1e-9:
            due += interval
        if ok and image is not None:
            yield Frame(camera_id, image, start_epoch + position, index)


def _first_index_at(seconds: float, fps: float) -> int:
    """Smallest frame index whose position ``index / fps`` is at or after ``seconds``."""
    index = int(seconds * fps)
    return index if index / fps >= seconds - 1e-9 else index + 1


def _seek(capture: cv2.VideoCapture, index: int) -> bool:
    """Position so the next grab returns frame ``index``; False (and nothing moved) if unsupported."""
    before = capture.get(cv2.CAP_PROP_POS_FRAMES)
    if capture.set(cv2.CAP_PROP_POS_FRAMES, index) and int(capture.get(cv2.CAP_PROP_POS_FRAMES)) == index:
        return True
    capture.set(cv2.CAP_PROP_POS_FRAMES, before)
    return False


# ------------------------------------------------------------------ live: one thread per camera
class CameraReader:
    """Reads one camera in a background thread and keeps only the newest sampled frame.

    ``on_status(camera_id, online, reason)`` is called on every online/offline transition (and
    once for the first known state), from the reader's thread.  ``online`` turns true with the
    first frame, false when opening or reading fails (or a file/folder has ended).
    """

    def __init__(self, camera: Camera, *, reconnect_initial_s: float = 1.0, reconnect_max_s: float = 30.0,
                 on_status: Optional[StatusCallback] = None, realtime: bool = True,
                 open_timeout_s: float = 10.0, read_timeout_s: float = 10.0):
        self.camera = camera
        self.camera_id = camera.id
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
        kind = source_kind(self.camera.source)
        log.info("camera reader started", camera=self.camera_id, source=redact(self.camera.source), kind=kind,
                 interval_s=self.interval)
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
        source = self.camera.source
        if kind == "snapshot":
            return self._pump_snapshots(source[len(SNAPSHOT_PREFIX):])
        if kind == "http" and _http_content_type(source, self.open_timeout_s).startswith("image/"):
            return self._pump_snapshots(source)
        return self._pump_stream(source)

    def _pump_stream(self, source: str) -> str:
        capture = open_capture(source, self.open_timeout_s, self.read_timeout_s)
        try:
            received, due = 0, time.time()
            while not self._stop.is_set():
                if not capture.grab():
                    return "stream ended or read timed out"
                received += 1
                now = time.time()
                if now < due:
                    continue
                ok, image = capture.retrieve()
                if not ok or image is None:
                    return "frame could not be decoded"
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
        path = local_path(self.camera.source)
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
            yield from _sample_video(capture, self.interval, time.time(), self.camera_id)
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
