"""First offence, no penalty (首违不罚), pure: prior offences per location and per plate / shop.

An offence is recorded under every key that identifies the offender: the location
(``site:camera/zone``) always, ``plate:<plate>`` and ``shop:<id>`` when the detection carries them.
The case is a first offence when none of its keys has a prior offence inside the window.

Example::

    >>> keys = offender_keys("cam-01", "z-road", plate="川A12345", shop_id=None)
    >>> keys
    ['site:cam-01/z-road', 'plate:川A12345']
    >>> prior_offences({"site:cam-01/z-road": [[0.0, "G01.a"]]}.get, keys, now=86400.0, window_days=365)
    1
"""
from __future__ import annotations

from typing import Callable, Optional

DAY_S = 86_400.0


def plate_key(plate: str) -> str:
    return f"plate:{plate}"


def offender_keys(camera_id: str, zone_id: str, plate: Optional[str], shop_id: Optional[str]) -> list[str]:
    keys = [f"site:{camera_id}/{zone_id}"]
    if plate:
        keys.append(plate_key(plate))
    if shop_id:
        keys.append(f"shop:{shop_id}")
    return keys


def prior_offences(history_of: Callable[[str], Optional[list]], keys: list[str], now: float,
                   window_days: int, exclude: Optional[str] = None) -> int:
    """Distinct earlier incidents (other than ``exclude``) under any of ``keys`` within the window before ``now``."""
    since = now - window_days * DAY_S
    incidents = {entry[1] for key in keys for entry in (history_of(key) or []) if since <= entry[0] <= now}
    return len(incidents - {exclude})


def record_offence(history: Optional[list], incident_id: str, at: float, window_days: int) -> list:
    """The key's history with this offence added and entries older than the window dropped."""
    since = at - window_days * DAY_S
    kept = [entry for entry in (history or []) if entry[0] >= since and entry[1] != incident_id]
    return kept + [[at, incident_id]]
