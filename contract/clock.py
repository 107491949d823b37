"""Timestamps and ids as the contract writes them: UTC ISO-8601 with milliseconds and ``Z``.

Example::

    >>> to_iso(0)
    '1970-01-01T00:00:00.000Z'
    >>> to_epoch("1970-01-01T08:00:00+08:00")
    0.0
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone


def utc_now() -> str:
    """Current time as UTC ISO-8601 with millisecond precision and a ``Z`` suffix."""
    return to_iso(datetime.now(timezone.utc))


def to_iso(moment: datetime | float) -> str:
    """A datetime (naive = UTC) or a POSIX timestamp as ``2026-11-21T01:40:11.505Z``."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Inverse of :func:`to_iso`; accepts any ISO-8601 string with an offset or ``Z``."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return parsed.astimezone(timezone.utc)


def to_epoch(text: str) -> float:
    return parse_iso(text).timestamp()


def is_utc_iso(text: str) -> bool:
    """Whether ``text`` is an ISO-8601 timestamp with an offset (``Z`` or ``+08:00``)."""
    try:
        return datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


def new_id() -> str:
    return uuid.uuid4().hex
