"""JSON on the worker's hot path: one encoder and an untyped decoder, both msgspec (C, no copies).

Typed decoding is the contract's (:func:`contract.decode`); this module only holds what the worker
adds around it.

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
