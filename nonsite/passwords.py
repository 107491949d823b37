"""Password hashes for the credentials in ``grids.yaml`` (PBKDF2-SHA256, standard library only).

Example::

    >>> stored = hash_password("s3cret", iterations=1000)
    >>> verify_password("s3cret", stored), verify_password("guess", stored)
    (True, False)
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

DEFAULT_ITERATIONS = 120_000


def hash_password(password: str, iterations: int = DEFAULT_ITERATIONS) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), iterations).hex()
    return f"pbkdf2_sha256${iterations}${salt}${digest}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations)).hex()
    return hmac.compare_digest(candidate, digest)
