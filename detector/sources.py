"""Capture sources: what a ``Camera.source`` string means, opening it, and sampling files offline.

The live reader, one thread per camera, is :class:`detector.camera_reader.CameraReader`.

How ``Camera.source`` is read:

==================================  =========================================================
``rtsp://``, ``rtsps://``,          live stream through PyAV decoding only the frames sampled
``rtmp://``, ``rtmps://``, ``udp``  (:mod:`detector.decoding`; OpenCV's FFmpeg backend with
                                    ``detector.decoder: opencv``), with open and read timeouts;
                                    reconnects with exponential backoff
``snapshot+http(s)://URL``          snapshot camera: ``GET URL`` once per interval, decode the image
``http(s)://URL``                   decided by the answer's ``Content-Type`` at each connect:
                                    ``image/*`` is a snapshot camera as above; anything else
                                    (``multipart/x-mixed-replace`` MJPEG, ``video/*``, HLS) is a
                                    stream through FFmpeg
a folder (or ``file://`` folder)    every image in it, in name order, one per interval; then ends
a file (or ``file://`` file)        a video file, sampled every interval of *video* time; then ends
==================================  =========================================================

A camera's ``substream_url``, when set, is read instead of its ``source`` (docs/cameras.md).

RTSP goes over TCP by default.  A camera or server that only offers UDP needs
``detector.rtsp_transport: udp`` (PyAV), or ``OPENCV_FFMPEG_CAPTURE_OPTIONS="rtsp_transport;udp"``
in the environment with the OpenCV decoder (OpenCV's own setting; it replaces OpenCV's defaults
for every FFmpeg capture of the process).

Example::

    >>> for frame in iter_file_frames("clip.mp4", 2.0, start_epoch=1.7e9): ...               # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np
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
        yield from sample_video(capture, sample_interval_s, start_epoch, camera_id or path.stem)
    finally:
        capture.release()


def sample_video(capture: cv2.VideoCapture, interval: float, start_epoch: float,
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
