"""Messages no consumer can use go to the dead-letter topic with why and where they came from.

The id is the source position, so a message re-read after a crash yields the same dead letter
(consumers dedupe by ``dead_letter_id``).

Example::

    >>> dl = dead_letter("nonsite.detections", 2, 41, "not JSON: Expecting value", b"{oops", "2026-11-21T01:00:00.000Z")
    >>> dl.dead_letter_id, dl.reason
    ('nonsite.detections/2/41', 'not JSON: Expecting value')
    >>> failure_reason(RecursionError("maximum recursion depth exceeded"))
    'RecursionError: maximum recursion depth exceeded'
"""
from __future__ import annotations

from contract.clock import utc_now
from contract.position import source_of
from contract.records import DeadLetter

MAX_RAW_CHARS = 10_000
MAX_REASON_CHARS = 1_000


def dead_letter(topic: str, partition: int, offset: int, reason: str, raw: bytes | str | None,
                at: str | None = None) -> DeadLetter:
    if raw is None:
        raw = b""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, (bytes, bytearray, memoryview)) else str(raw)
    return DeadLetter(dead_letter_id=source_of(topic, partition, offset), topic=topic, partition=partition,
                      offset=offset, reason=reason[:MAX_REASON_CHARS], at=at or utc_now(), raw=text[:MAX_RAW_CHARS])


def failure_reason(exc: BaseException) -> str:
    """The reason for a message whose handling raised ``exc``: its class and first line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
