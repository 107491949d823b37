"""Decode only what is used: a live stream read through PyAV, decoding only the frames a sample needs.

A camera sends 25-30 frames a second; the detector looks at one every ``sample_interval_s``.  Every
packet is demuxed (the connection must be drained), but the decoder only sees:

* ``keyframes``: when the sample interval is at least the stream's keyframe interval, the one
  keyframe closest to each sample time (``skip_frame = "NONKEY"`` besides): one decode per sample;
* ``from_keyframe``: when keyframes are further apart than the sample interval, the packets from
  the last keyframe up to the frame due, decoded as they come while a sample falls before the next
  keyframe (so it is ready when due); the rest of the group of pictures is never decoded, and a
  sample due less than a quarter of its interval before a keyframe waits for it;
* ``every_frame``: a stream that flagged no keyframe in its first ``NO_KEYFRAME_S`` seconds
  (intra refresh) has every packet decoded, as OpenCV would.

The keyframe interval is measured on the stream (the longest of the last few gaps), and the mode
is chosen again at every keyframe.  Sample times follow the stream's clock, not arrival times, so
network jitter does not shift a keyframe out of its slot.

Example::

    >>> choose_mode(2.0, 1.0), choose_mode(0.5, 2.0), choose_mode(2.0, None)
    ('keyframes', 'from_keyframe', 'from_keyframe')
    >>> container = open_stream("rtsp://10.0.0.5/sub", 10, 10, "tcp")                   # doctest: +SKIP
    >>> for sample in StreamDecoder(container, 2.0).samples(lambda: False): ...        # doctest: +SKIP
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal, Optional
from urllib.parse import urlsplit

import av
import numpy as np

from detector.sources import SourceError, redact

DecodeMode = Literal["keyframes", "from_keyframe", "every_frame"]
RtspTransport = Literal["tcp", "udp"]

# 29.97 fps cameras with a keyframe every 30 frames send one every 1.001 s: that still serves a 1 s interval
KEYFRAME_SLACK = 0.05
# a sample may wait this share of its interval for a keyframe, rather than decode the group up to it
KEYFRAME_WAIT_SHARE = 0.25
KEYFRAME_GAPS = 4  # the keyframe interval is the longest of this many last gaps (cameras with a variable GOP)
NO_KEYFRAME_S = 10.0
MAX_DECODE_ERRORS = 100  # packets in a row the decoder refused: the stream is broken, reconnect
DEFAULT_FPS = 25.0
# demuxers that number frames at a guessed rate instead of timing them: their streams are timed by arrival
UNTIMED_FORMATS = frozenset({"mpjpeg", "mjpeg"})
REORDER_S = 1.0  # the stream's clock went back when it shows a frame this much before the last one taken


def choose_mode(sample_interval_s: float, keyframe_interval_s: Optional[float]) -> DecodeMode:
    """``keyframes`` when a keyframe comes at least once per sample interval, else ``from_keyframe``.

    Until the keyframe interval is known (two keyframes seen), ``from_keyframe``: it serves any interval.
    """
    if keyframe_interval_s is not None and sample_interval_s >= keyframe_interval_s * (1 - KEYFRAME_SLACK):
        return "keyframes"
    return "from_keyframe"


@dataclass
class KeyframeClock:
    """Keyframe times of one connection (stream seconds) and the interval they show."""

    gaps: deque[float] = field(default_factory=lambda: deque(maxlen=KEYFRAME_GAPS))
    last_s: Optional[float] = None

    def add(self, at_s: float) -> None:
        if self.last_s is not None:
            gap = at_s - self.last_s
            if gap <= 0:  # the stream's clock jumped back: what was measured no longer holds
                self.gaps.clear()
            else:
                self.gaps.append(gap)
        self.last_s = at_s

    @property
    def interval_s(self) -> Optional[float]:
        return max(self.gaps) if self.gaps else None

    @property
    def next_s(self) -> Optional[float]:
        """When the next keyframe is expected."""
        return self.last_s + self.interval_s if self.last_s is not None and self.interval_s is not None else None


def keyframe_serves(due_s: Optional[float], next_keyframe_s: Optional[float], frame_s: float, wait_s: float) -> bool:
    """Does the next keyframe stand in for the sample due: is it the nearest frame, or due at most ``wait_s``
    before it?  Then the frames before it are never decoded.

    >>> keyframe_serves(1.9, 2.0, 0.04, 0.125), keyframe_serves(1.5, 2.0, 0.04, 0.125)
    (True, False)
    """
    return due_s is not None and next_keyframe_s is not None and next_keyframe_s - due_s <= max(frame_s / 2, wait_s)


def decode_as_received(due_s: Optional[float], next_keyframe_s: Optional[float], frame_s: float,
                       wait_s: float) -> bool:
    """Between keyframes: decode each packet as it comes while a frame before the next keyframe will be
    sampled, so the sample is ready when due; after the last one, decode nothing more.  Until the keyframe
    interval is known, nothing is decoded before it is due.

    >>> decode_as_received(1.5, 2.0, 0.04, 0.125), decode_as_received(1.9, 2.0, 0.04, 0.125)
    (True, False)
    """
    return due_s is not None and next_keyframe_s is not None and \
        not keyframe_serves(due_s, next_keyframe_s, frame_s, wait_s)


@dataclass
class SampleSchedule:
    """When the next sample is due, in stream seconds; the first frame offered is always due."""

    interval_s: float
    due_s: Optional[float] = None
    last_s: Optional[float] = None

    def is_due(self, at_s: float, tolerance_s: float) -> bool:
        """``tolerance_s``: how early a frame may be and still stand for the due time (half the spacing of
        the frames that can be taken, so the nearest one is)."""
        return at_s >= self.earliest_s(at_s, tolerance_s)

    def earliest_s(self, at_s: float, tolerance_s: float) -> float:
        """The earliest stream time a frame taken now may have (``-inf``: any frame)."""
        if self.due_s is None or self._went_back(at_s):
            return float("-inf")  # first frame, or the stream's clock went back
        return self.due_s - tolerance_s

    def _went_back(self, at_s: float) -> bool:
        # frames reordered for B-frames come a little earlier than the last taken: not a clock change
        return self.last_s is not None and at_s < self.last_s - max(self.interval_s, REORDER_S)

    def taken(self, at_s: float, tolerance_s: float) -> None:
        self.last_s = at_s
        self.due_s = at_s + self.interval_s if self.due_s is None else self.due_s + self.interval_s
        if self.due_s - tolerance_s <= at_s:  # far behind (a stall, a jump ahead): count again from here
            self.due_s = at_s + self.interval_s


@dataclass
class DecodeCounters:
    """What a camera's stream cost: frames received, sent to the decoder, and handed over."""

    received: int = 0
    decoded: int = 0
    used: int = 0
    decode_errors: int = 0
    mode: str = ""


@dataclass(frozen=True)
class Received:
    """When a packet came, its number on the connection, and when its frame is shown (stream seconds)."""

    arrived_at: float
    index: int
    at_s: float


@dataclass
class Sample:
    image: np.ndarray  # BGR uint8
    arrived_at: float  # wall clock when the frame's packet was read
    index: int  # frames received on this connection before it
    stream_s: float


def open_stream(url: str, open_timeout_s: float, read_timeout_s: float,
                rtsp_transport: RtspTransport = "tcp") -> av.container.InputContainer:
    """A PyAV input with open and read timeouts; :class:`SourceError` (URL redacted) when it cannot open."""
    options = {"rtsp_transport": rtsp_transport} if urlsplit(url).scheme.lower() in ("rtsp", "rtsps") else {}
    try:
        container = av.open(url, options=options, timeout=(open_timeout_s, read_timeout_s))
    except (av.error.FFmpegError, OSError) as exc:
        detail = str(exc).replace(url, redact(url))
        raise SourceError(f"cannot open {redact(url)} with FFmpeg: {detail}") from None
    if not container.streams.video:
        container.close()
        raise SourceError(f"{redact(url)} has no video stream")
    return container


class StreamDecoder:
    """Samples of one open connection; counters accumulate in ``counters`` (shared across reconnects)."""

    def __init__(self, container: av.container.InputContainer, interval_s: float,
                 counters: Optional[DecodeCounters] = None):
        self.container = container
        self.stream = container.streams.video[0]
        self.context = self.stream.codec_context
        self.context.thread_count = 1  # one thread per camera already; frame threads would delay every output
        untimed = container.format.name in UNTIMED_FORMATS or not self.stream.time_base
        self.time_base = 0.0 if untimed else float(self.stream.time_base)
        self.last_at_s: Optional[float] = None
        self.newest_s: Optional[float] = None  # the latest time shown by a packet received (B-frames come later)
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.frame_s = 1.0 / float(rate) if rate else 1.0 / DEFAULT_FPS
        self.counters = counters if counters is not None else DecodeCounters()
        self.clock = KeyframeClock()
        self.schedule = SampleSchedule(interval_s)
        self.wait_s = KEYFRAME_WAIT_SHARE * interval_s
        self.pending: list[tuple[av.Packet, Received]] = []  # not decoded yet, since the last keyframe
        self.received: dict[Optional[int], Received] = {}  # by pts: the packets decoded and not shown yet
        self.ahead: list[av.VideoFrame] = []  # decoded with the last sample (B-frames), shown after it
        self.target_s: Optional[float] = None  # awaiting the first frame shown at or after this stream time
        self.skipped = False  # packets left out since the decoder was last flushed
        self.keyframe_seen = False
        self.decode_all = False
        self.started_s: Optional[float] = None
        self.refused_in_row = 0
        self.opened_at = time.time()

    @property
    def mode(self) -> DecodeMode:
        return "every_frame" if self.decode_all else choose_mode(self.schedule.interval_s, self.clock.interval_s)

    def samples(self, stopping: Callable[[], bool]) -> Iterator[Sample]:
        """Samples until the stream ends (returns) or fails (``av.error.FFmpegError``, ``SourceError``)."""
        for packet in self.container.demux(self.stream):
            if stopping():
                return
            if packet.size == 0:  # the end of the input
                return
            sample = self.offer(packet, time.time())
            if sample is not None:
                yield sample

    def offer(self, packet: av.Packet, arrived_at: float) -> Optional[Sample]:
        """One received packet; the sample it completes, if any."""
        index = self.counters.received
        self.counters.received += 1
        at_s = self._stream_seconds(packet, arrived_at)
        if at_s is None:
            return None  # no timestamp yet (the first RTP packets): nothing to place it by
        if self.started_s is None:
            self.started_s = at_s
        if self.newest_s is None or at_s > self.newest_s or at_s < self.newest_s - REORDER_S:
            self.newest_s = at_s
        if packet.is_keyframe:
            self.keyframe_seen, self.decode_all = True, False
            self.clock.add(at_s)
            if self.target_s is None:
                self._drop_pending()
        elif not self.keyframe_seen and not self.decode_all:
            self.decode_all = at_s - self.started_s >= NO_KEYFRAME_S
            if not self.decode_all:
                return None
        mode = self.mode
        self.counters.mode = mode
        if mode == "keyframes" and not packet.is_keyframe and self.target_s is None:
            self.skipped = True
            return None
        self.pending.append((packet, Received(arrived_at, index, at_s)))
        if self.target_s is None and self._due(packet, at_s, mode):
            self.target_s = at_s if mode == "keyframes" else self.schedule.earliest_s(at_s, self._tolerance(mode))
        if self.target_s is None:
            if mode == "every_frame" or (mode == "from_keyframe" and decode_as_received(
                    self.schedule.due_s, self.clock.next_s, self.frame_s, self.wait_s)):
                self._feed(mode)  # nothing is wanted yet: the frames are dropped as they come out
            return None
        return self._decode_to_target(mode)

    def _due(self, packet: av.Packet, at_s: float, mode: DecodeMode) -> bool:
        if not self.schedule.is_due(self.newest_s, self._tolerance(mode)):
            return False
        next_keyframe_s = self.clock.next_s
        waits = mode == "from_keyframe" and not packet.is_keyframe and next_keyframe_s is not None and \
            at_s < next_keyframe_s and keyframe_serves(self.schedule.due_s, next_keyframe_s, self.frame_s, self.wait_s)
        return not waits  # a keyframe late past its time no longer stands in: decode up to the frame due

    # ------------------------------------------------------------ decoding
    def _decode_to_target(self, mode: DecodeMode) -> Optional[Sample]:
        frames = self.ahead + self._feed(mode)
        if mode == "keyframes" and not frames:
            frames += self._drain()  # a decoder that reorders (B-frames) holds a lone keyframe back
        wanted = self._wanted(frames)
        if not wanted and mode == "keyframes":
            self.target_s = None  # a keyframe that did not decode (lost packets): the next one stands in
            return None
        if not wanted:
            return None  # comes out of the reordering decoder (B-frames) with the next packets
        frame, shown_s = wanted[0]
        self.ahead = [f for f, at_s in wanted[1:] if at_s > shown_s]
        came = self.received.get(frame.pts) or Received(time.time(), self.counters.received - 1, shown_s)
        self.received = {pts: later for pts, later in self.received.items() if later.at_s > shown_s}
        self.schedule.taken(shown_s, self._tolerance(mode))
        self.target_s = None
        self.counters.used += 1
        return Sample(frame.to_ndarray(format="bgr24"), came.arrived_at, came.index, shown_s)

    def _feed(self, mode: DecodeMode) -> list[av.VideoFrame]:
        """Decode the pending packets; the frames shown at or after the target (none without one)."""
        self.context.skip_frame = "NONKEY" if mode == "keyframes" else "DEFAULT"
        frames: list[av.VideoFrame] = []
        for packet, came in self.pending:
            self.received[packet.pts] = came
            self.counters.decoded += 1
            try:
                frames.extend(f for f, _ in self._wanted(self.context.decode(packet)))
                self.refused_in_row = 0
            except av.error.InvalidDataError:  # a lost packet: concealed until the next keyframe
                self.counters.decode_errors += 1
                self.refused_in_row += 1
                if self.refused_in_row >= MAX_DECODE_ERRORS:
                    raise SourceError("frame could not be decoded") from None
        self.pending.clear()
        return frames

    def _drain(self) -> list[av.VideoFrame]:
        try:
            frames = list(self.context.decode(None))
        except av.error.FFmpegError:
            frames = []
        self.context.flush_buffers()
        self.skipped = False
        return frames

    def _drop_pending(self) -> None:
        """A keyframe starts a new group of pictures: what was not decoded of the last one never will be."""
        if self.pending or self.skipped:
            self.pending.clear()
            self.context.flush_buffers()
            self.received.clear()
            self.ahead.clear()
            self.skipped = False

    def _wanted(self, frames: list[av.VideoFrame]) -> list[tuple[av.VideoFrame, float]]:
        """The frames shown at or after the target, with their stream time, in the order shown."""
        if self.target_s is None:
            return []
        timed = [(f, self._shown_s(f)) for f in frames]
        return [(f, shown_s) for f, shown_s in timed if shown_s >= self.target_s]

    def _shown_s(self, frame: av.VideoFrame) -> float:
        if self.time_base and frame.pts is not None:
            return frame.pts * self.time_base
        came = self.received.get(frame.pts)
        return came.at_s if came is not None else (self.last_at_s or 0.0)

    def _stream_seconds(self, packet: av.Packet, arrived_at: float) -> Optional[float]:
        """The time the packet's frame is shown on the stream's clock (arrival time since the connection
        opened for streams not timed, such as MJPEG over HTTP); a packet without one is placed with the last."""
        if not self.time_base:
            self.last_at_s = arrived_at - self.opened_at
            return self.last_at_s
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is not None:
            self.last_at_s = stamp * self.time_base
        return self.last_at_s

    def _tolerance(self, mode: DecodeMode) -> float:
        if mode == "keyframes" and self.clock.interval_s is not None:
            return self.clock.interval_s / 2
        return self.frame_s / 2
