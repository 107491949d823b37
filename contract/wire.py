"""The JSON wire format: one msgspec encoder and an untyped decoder (C, no copies).

Typed decoding is :func:`contract.decode`; these are for what has no record type (ticks, table
values, envelopes).

Example::

    >>> encode({"a": [1, 2]}), decode_any(b'{"a":[1,2]}')
    (b'{"a":[1,2]}', {'a': [1, 2]})
"""
from __future__ import annotations

from typing import Any

import msgspec

encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.Decoder().decode


def decode_any(raw: bytes | str) -> Any:
    """Untyped JSON decoding (objects become dicts), as ``json.loads`` but faster."""
    return _decode_any(raw)
