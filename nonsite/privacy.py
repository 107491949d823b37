"""Personal data: a number plate is one.  Reports count by :func:`plate_key`, never by the plate's text.

``plate_key`` is a keyed hash (HMAC-SHA256, the first 16 bytes as 32 hex digits) with the secret of the
environment variable ``NONSITE_PLATE_SECRET``: the same plate always gives the same key, so repeat
offenders can be counted, but without the secret nobody can go from a key back to a plate by hashing the
(few million) possible plates.  A deployment must set ``NONSITE_PLATE_SECRET`` (a long random string, e.g.
``python -c 'import secrets; print(secrets.token_hex(32))'``) and keep it: another secret gives other keys.
Unset, a fixed development secret is used (with one warning in the log) so the demo and the tests run.

Example::

    >>> key = plate_key("京A88731", secret=b"example-secret")
    >>> key
    '08c593405484d57d1b27c9b295f93aac'
    >>> key == plate_key(" 京a88731 ", secret=b"example-secret"), key == plate_key("京A88731", secret=b"other")
    (True, False)
"""
from __future__ import annotations

import hashlib
import hmac
import os
from typing import Optional

import structlog

SECRET_VARIABLE = "NONSITE_PLATE_SECRET"
DEVELOPMENT_SECRET = b"nonsite-development-plate-secret: set NONSITE_PLATE_SECRET in a deployment"
KEY_BYTES = 16

log = structlog.get_logger("nonsite.privacy")
_warned = False


def plate_secret() -> bytes:
    """The secret of ``NONSITE_PLATE_SECRET``, or the development secret (warned about once) when unset."""
    global _warned
    value = os.environ.get(SECRET_VARIABLE, "")
    if value:
        return value.encode()
    if not _warned:
        _warned = True
        log.warning("plate_secret_unset", variable=SECRET_VARIABLE,
                    message=f"{SECRET_VARIABLE} is not set: plate keys use the fixed development secret; "
                            "a deployment must set it")
    return DEVELOPMENT_SECRET


def plate_key(plate: str, secret: Optional[bytes] = None) -> str:
    """The plate's key: HMAC-SHA256 of the plate (trimmed, upper case) with the secret, 32 hex digits."""
    text = plate.strip().upper().encode()
    return hmac.new(secret if secret is not None else plate_secret(), text, hashlib.sha256).digest()[:KEY_BYTES].hex()
