"""Logins from ``grids.yaml`` and signed, expiring tokens.

A token is ``base64url(json claims) + "." + hex HMAC-SHA256``; the secret comes from
``NONSITE_WEB_SECRET`` or is drawn at start (tokens then die with the process).

Example::

    >>> issuer = TokenIssuer(b"k", ttl_s=60)
    >>> token = issuer.issue(Principal("O101", "zhangwei", "Zhang Wei", "officer", "G01"), now=0)
    >>> issuer.check(token, now=30).username, issuer.check(token, now=61)
    ('zhangwei', None)
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import secrets
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Optional, Protocol

from nonsite.config import City
from nonsite.passwords import DEFAULT_ITERATIONS, hash_password, verify_password

ROLES = ("operator", "officer", "supervisor")


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``person_id`` is the officer id for officers, the user id otherwise."""

    person_id: str
    username: str
    name: str
    role: str
    grid: Optional[str] = None


def find_login(city: City, username: str, password: str) -> Optional[Principal]:
    """The person whose configured credentials match, or None.

    An unknown username costs one password check as well (against a hash of nothing anybody knows),
    so the answer time does not tell which usernames exist.
    """
    person, stored = _person_and_hash(city, username)
    ok = verify_password(password, stored if stored is not None else _stand_in_hash(_usual_iterations(city)))
    return person if ok and stored is not None else None


def _person_and_hash(city: City, username: str) -> tuple[Optional[Principal], Optional[str]]:
    for officer in city.officers:
        if officer.credentials and officer.credentials.username == username:
            principal = Principal(officer.id, username, officer.name, "officer", officer.grid)
            return principal, officer.credentials.password_hash
    for user in city.users:
        if user.credentials.username == username:
            return Principal(user.id, username, user.name, user.role), user.credentials.password_hash
    return None, None


def _usual_iterations(city: City) -> int:
    """The PBKDF2 iteration count most configured passwords use (what a real check costs)."""
    hashes = [o.credentials.password_hash for o in city.officers if o.credentials]
    hashes += [u.credentials.password_hash for u in city.users]
    counts = [int(parts[1]) for parts in (h.split("$") for h in hashes) if len(parts) == 4 and parts[1].isdigit()]
    return Counter(counts).most_common(1)[0][0] if counts else DEFAULT_ITERATIONS


@functools.lru_cache(maxsize=8)
def _stand_in_hash(iterations: int) -> str:
    return hash_password(secrets.token_hex(16), iterations=iterations)


class Revocations(Protocol):
    """Where logged-out tokens are kept until they expire (the database: :class:`history.queries.CaseStore`)."""

    def revoke(self, token: str, expires_at: datetime) -> None: ...

    def is_revoked(self, token: str) -> bool: ...


class MemoryRevocations:
    """Revocations that last as long as the process (tests, a throwaway server)."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()

    def revoke(self, token: str, expires_at: datetime) -> None:
        self.tokens.add(token)

    def is_revoked(self, token: str) -> bool:
        return token in self.tokens


class TokenIssuer:
    """Stateless signed tokens with an expiry, plus a revocation list for logout."""

    def __init__(self, secret: bytes, ttl_s: float, revocations: Optional[Revocations] = None):
        self.secret, self.ttl_s = secret, ttl_s
        self.revocations = revocations or MemoryRevocations()

    @classmethod
    def from_env(cls, ttl_s: float, revocations: Optional[Revocations] = None) -> "TokenIssuer":
        secret = os.environ.get("NONSITE_WEB_SECRET")
        return cls(secret.encode() if secret else secrets.token_bytes(32), ttl_s, revocations)

    def issue(self, who: Principal, now: Optional[float] = None) -> str:
        now = time.time() if now is None else now
        claims = {**asdict(who), "exp": now + self.ttl_s, "jti": secrets.token_hex(8)}
        body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{body}.{self._sign(body)}"

    def expires_at(self, token: str) -> float:
        return float(self._claims(token)["exp"])

    def check(self, token: str, now: Optional[float] = None) -> Optional[Principal]:
        """The principal of a valid, unexpired, unrevoked token, else None: never an exception, whatever
        the caller sent (non-ASCII text, stray dots), since a token is input from anyone."""
        try:
            body, signature = token.encode("ascii").split(b".")
        except (UnicodeEncodeError, ValueError):
            return None
        if not hmac.compare_digest(signature, self._sign(body.decode()).encode()) \
                or self.revocations.is_revoked(token):
            return None
        claims = self._claims(token)
        if (time.time() if now is None else now) >= claims["exp"] or claims.get("role") not in ROLES:
            return None
        return Principal(claims["person_id"], claims["username"], claims["name"], claims["role"], claims.get("grid"))

    def revoke(self, token: str) -> None:
        """Log a token out until it expires (the list forgets it then: it no longer works anyway)."""
        expires = datetime.fromtimestamp(self.expires_at(token), timezone.utc).replace(tzinfo=None)
        self.revocations.revoke(token, expires)

    def _sign(self, body: str) -> str:
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def _claims(token: str) -> dict:
        body = token.split(".")[0]
        return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
