"""Time conversions the engine repeats for every input, memoised (a batch sees the same moments again and again).

Example::

    >>> later_iso("2026-11-21T01:00:00.000Z", "2026-11-21T00:59:59.999Z")
    '2026-11-21T01:00:00.000Z'
"""
from __future__ import annotations

import functools
import re
from datetime import datetime

from contract import to_epoch as _to_epoch, to_iso as _to_iso

to_iso = functools.lru_cache(maxsize=1 << 16)(_to_iso)
to_epoch = functools.lru_cache(maxsize=1 << 16)(_to_epoch)


def epoch_of_new(text: str) -> float:
    """``to_epoch`` for a timestamp seen once (a detection's ``observed_at``): no memo to miss."""
    if text[-1] == "Z":
        return datetime.fromisoformat(text).timestamp()
    return _to_epoch(text)


# ASCII digits: what datetime.fromisoformat accepts (intake checked every timestamp with it), and twice as fast
CANONICAL_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", re.ASCII)
CANONICAL_LENGTH = 24  # of every text CANONICAL_ISO matches


def later_iso(a: str, b: str) -> str:
    """The later of two timestamps; canonical ones (``…:SS.mmmZ``) compare as text."""
    if len(a) == len(b) == 24 and a[-1] == b[-1] == "Z":
        return a if a >= b else b
    return a if to_epoch(a) >= to_epoch(b) else b


def iso_of(text: str, epoch: float) -> str:
    """``to_iso(epoch)`` where ``text`` is the same moment: ``text`` itself when it is already in that form
    (every detection's timestamps are, and each is new, so the memo above would only miss)."""
    return text if CANONICAL_ISO.fullmatch(text) else to_iso(epoch)

