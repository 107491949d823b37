"""A bounded, ordered, on-disk queue of Kafka records: where events wait while Kafka is unreachable.

Records are appended to segment files (``seg-000000000001.spool``, ...) and fsynced before
:meth:`Spool.append` returns, so an event accepted by the spool survives a crash or a restart of the
detector.  Each record is framed as ``<length:u32><crc32:u32><body>`` (little endian) with a JSON
body ``{"t": topic, "k": key, "v": value}``; a torn record at the end of the last segment (a crash in
mid-write) is cut off when the spool is opened.  ``cursor.json`` names the first record not yet
delivered; fully delivered segments are deleted.

The bound is on the bytes of records waiting: a record that does not fit is refused (the caller
counts and logs it) and the records already spooled stay in order.

Example::

    >>> spool = Spool(Path("/tmp/spool"), max_bytes=1 << 20)          # doctest: +SKIP
    >>> spool.append([SpoolRecord("nonsite.detections", b"cam-01", b"{}")])
    1
    >>> batch = spool.peek(100); spool.commit(len(batch)); spool.depth
    0
"""
from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import structlog

log = structlog.get_logger("detector.spool")

HEADER = struct.Struct("<II")
SEGMENT_GLOB = "seg-*.spool"
CURSOR = "cursor.json"


@dataclass(frozen=True)
class SpoolRecord:
    """One Kafka record as the publisher sends it."""

    topic: str
    key: Optional[bytes]
    value: bytes

    def encode(self) -> bytes:
        body = json.dumps({"t": self.topic, "k": None if self.key is None else self.key.decode(),
                           "v": self.value.decode()}, ensure_ascii=False, separators=(",", ":")).encode()
        return HEADER.pack(len(body), zlib.crc32(body)) + body

    @classmethod
    def decode(cls, body: bytes) -> "SpoolRecord":
        data = json.loads(body)
        key = data["k"]
        return cls(data["t"], None if key is None else key.encode(), data["v"].encode())


@dataclass(frozen=True)
class _Entry:
    segment: int
    offset: int
    size: int  # framed size on disk


def _segment_name(number: int) -> str:
    return f"seg-{number:012d}.spool"


def _segment_number(path: Path) -> int:
    return int(path.stem.split("-")[1])


class Spool:
    """Thread-safe; one process per folder."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: Optional[int] = None):
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.segment_bytes = segment_bytes or min(16 << 20, max(64 << 10, self.max_bytes // 8))
        self._lock = threading.Lock()
        self._pending: deque[_Entry] = deque()
        self._pending_bytes = 0
        self._writer = None
        self._writer_segment = 0
        self._writer_size = 0
        self._recover()

    # ------------------------------------------------------------ public
    @property
    def depth(self) -> int:
        """Records waiting."""
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def append(self, records: Sequence[SpoolRecord]) -> int:
        """Write records in order and fsync; returns how many fitted (the first ``n``; the rest were refused)."""
        if not records:
            return 0
        with self._lock:
            accepted = 0
            for record in records:
                frame = record.encode()
                if self._pending_bytes + len(frame) > self.max_bytes:
                    break
                if self._writer is None or (self._writer_size and self._writer_size + len(frame) > self.segment_bytes):
                    self._rotate()
                self._writer.write(frame)
                self._pending.append(_Entry(self._writer_segment, self._writer_size, len(frame)))
                self._writer_size += len(frame)
                self._pending_bytes += len(frame)
                accepted += 1
            if accepted:
                self._writer.flush()
                os.fsync(self._writer.fileno())
            return accepted

    def peek(self, limit: int) -> list[SpoolRecord]:
        """Up to ``limit`` oldest records, without removing them."""
        with self._lock:
            entries = [self._pending[i] for i in range(min(limit, len(self._pending)))]
            records: list[SpoolRecord] = []
            handle, handle_segment = None, -1
            try:
                for entry in entries:
                    if entry.segment != handle_segment:
                        if handle is not None:
                            handle.close()
                        handle = open(self.directory / _segment_name(entry.segment), "rb")
                        handle_segment = entry.segment
                    handle.seek(entry.offset + HEADER.size)
                    records.append(SpoolRecord.decode(handle.read(entry.size - HEADER.size)))
            finally:
                if handle is not None:
                    handle.close()
            return records

    def commit(self, count: int) -> None:
        """The ``count`` oldest records were delivered: forget them (durably)."""
        if count <= 0:
            return
        with self._lock:
            for _ in range(min(count, len(self._pending))):
                self._pending_bytes -= self._pending.popleft().size
            if not self._pending:
                self._reset()
                return
            head = self._pending[0]
            self._write_cursor(head.segment, head.offset)
            for path in self._segments():
                if _segment_number(path) < head.segment:
                    path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    # ------------------------------------------------------------ files
    def _segments(self) -> list[Path]:
        return sorted(self.directory.glob(SEGMENT_GLOB), key=_segment_number)

    def _rotate(self) -> None:
        if self._writer is not None:
            self._writer.close()
        existing = self._segments()
        self._writer_segment = max([_segment_number(p) for p in existing] + [self._writer_segment]) + 1
        self._writer = open(self.directory / _segment_name(self._writer_segment), "ab")
        self._writer_size = 0
        _fsync_dir(self.directory)

    def _reset(self) -> None:
        """Nothing waits: remove every segment and the cursor; the next append starts a new segment."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for path in self._segments():
            path.unlink(missing_ok=True)
        (self.directory / CURSOR).unlink(missing_ok=True)
        self._writer_size = 0
        _fsync_dir(self.directory)

    def _write_cursor(self, segment: int, offset: int) -> None:
        temporary = self.directory / (CURSOR + ".tmp")
        with open(temporary, "w") as handle:
            json.dump({"segment": segment, "offset": offset}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.directory / CURSOR)
        _fsync_dir(self.directory)

    def _read_cursor(self) -> tuple[int, int]:
        try:
            data = json.loads((self.directory / CURSOR).read_text())
            return int(data["segment"]), int(data["offset"])
        except FileNotFoundError:
            return 0, 0
        except (ValueError, KeyError, TypeError):
            log.warning("spool cursor unreadable, replaying the whole spool", path=str(self.directory / CURSOR))
            return 0, 0

    def _recover(self) -> None:
        """Rebuild the list of waiting records from the files; cut a torn tail off the last segment."""
        cursor_segment, cursor_offset = self._read_cursor()
        segments = self._segments()
        for position, path in enumerate(segments):
            number = _segment_number(path)
            if number < cursor_segment:
                path.unlink(missing_ok=True)
                continue
            start = cursor_offset if number == cursor_segment else 0
            good_end = self._scan(path, number, start)
            size = path.stat().st_size
            if good_end < size:
                last = position == len(segments) - 1
                log.warning("spool segment has a damaged tail" + (", cut off" if last else ", rest skipped"),
                            path=str(path), valid_bytes=good_end, file_bytes=size)
                if last:
                    with open(path, "r+b") as handle:
                        handle.truncate(good_end)
                        os.fsync(handle.fileno())
        if segments:
            self._writer_segment = _segment_number(segments[-1])
        if self._pending:
            log.info("spool holds undelivered records", records=len(self._pending), bytes=self._pending_bytes,
                     directory=str(self.directory))
        else:
            self._reset()

    def _scan(self, path: Path, number: int, start: int) -> int:
        """Index the valid records of one segment from ``start``; returns where the valid part ends."""
        data = path.read_bytes()
        offset = start
        while offset + HEADER.size <= len(data):
            length, crc = HEADER.unpack_from(data, offset)
            body = data[offset + HEADER.size: offset + HEADER.size + length]
            if len(body) < length or zlib.crc32(body) != crc:
                break
            self._pending.append(_Entry(number, offset, HEADER.size + length))
            self._pending_bytes += HEADER.size + length
            offset += HEADER.size + length
        return offset


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
