"""Messages no agent can use go to the dead-letter topic with why and where they came from.

The id is derived from the source position, so a message re-read after a crash yields the same
dead letter (consumers dedupe by ``dead_letter_id``).

Example::

    >>> dl = dead_letter("nonsite.detections", 2, 41, "not JSON: Expecting value", b"{oops", "2026-11-21T01:00:00.000Z")
    >>> dl.dead_letter_id, dl.reason
    ('nonsite.detections/2/41', 'not JSON: Expecting value')
"""
from __future__ import annotations

from stream.records import DeadLetter

MAX_RAW_CHARS = 10_000


def source_of(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}/{offset}"


def dead_letter(topic: str, partition: int, offset: int, reason: str, raw: bytes | str, at: str) -> DeadLetter:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
    return DeadLetter(dead_letter_id=source_of(topic, partition, offset), topic=topic, partition=partition,
                      offset=offset, reason=reason, at=at, raw=text[:MAX_RAW_CHARS])
