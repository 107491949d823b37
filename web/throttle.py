"""Login throttling: after a few failed logins, a growing wait, per username and per client address.

An attempt counts as a failure from the moment it starts (so a burst of parallel guesses is
throttled too) and a successful login takes it back.  Once a key (a username, or an address) has
``free`` failures, each further attempt must wait ``first_delay_s`` after the last one, doubling per
failure up to ``max_delay_s``; a correct password does not get through a wait either.

Example::

    >>> clock = FakeClock()
    >>> throttle = LoginThrottle(free_failures_per_user=2, first_delay_s=10, clock=clock)
    >>> [throttle.begin("ops", "10.0.0.1") for _ in range(3)]
    [0.0, 0.0, 10.0]
    >>> clock.now += 10; throttle.begin("ops", "10.0.0.1")
    0.0
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

FREE_FAILURES_PER_USER = 5
FREE_FAILURES_PER_ADDRESS = 20  # several officers may share one address (a station's NAT)
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 15 * 60.0
MAX_TRACKED_KEYS = 10_000  # bounds the memory an attacker can fill with made-up usernames


@dataclass
class Failures:
    """Failed logins of one key in a row, and when the last one started."""

    count: int
    last_at: float


class FakeClock:
    """A clock the tests move by hand (``clock.now += 60``) instead of sleeping."""

    def __init__(self, now: float = 1_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class LoginThrottle:
    """Counts failed logins per username and per client address and says how long to wait."""

    def __init__(self, free_failures_per_user: int = FREE_FAILURES_PER_USER,
                 free_failures_per_address: int = FREE_FAILURES_PER_ADDRESS, first_delay_s: float = FIRST_DELAY_S,
                 max_delay_s: float = MAX_DELAY_S, max_tracked_keys: int = MAX_TRACKED_KEYS,
                 clock: Callable[[], float] = time.monotonic):
        self.free = {"user": free_failures_per_user, "address": free_failures_per_address}
        self.first_delay_s, self.max_delay_s = first_delay_s, max_delay_s
        self.max_tracked_keys = max_tracked_keys
        self.clock = clock
        self.failures: OrderedDict[tuple[str, str], Failures] = OrderedDict()

    def begin(self, username: str, address: str) -> float:
        """Seconds the caller must still wait (0.0: go ahead, and the attempt counts as failed until
        :meth:`succeeded` says otherwise)."""
        keys = self._keys(username, address)
        now = self.clock()
        wait = max(self._wait(key, now) for key in keys)
        if wait > 0:
            return wait
        for key in keys:
            self._count(key, now)
        return 0.0

    def succeeded(self, username: str, address: str) -> None:
        """The attempt was a correct login: forget the user's failures and take back the address's count."""
        user_key, address_key = self._keys(username, address)
        self.failures.pop(user_key, None)
        failures = self.failures.get(address_key)
        if failures is not None:
            failures.count -= 1
            if failures.count <= 0:
                del self.failures[address_key]

    def delay_after(self, kind: str, count: int) -> float:
        """The wait after ``count`` failures in a row of a ``kind`` key (``user`` or ``address``)."""
        beyond = count - self.free[kind]
        return 0.0 if beyond < 0 else min(self.first_delay_s * 2 ** min(beyond, 64), self.max_delay_s)

    @staticmethod
    def _keys(username: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("user", username.casefold()), ("address", address)

    def _wait(self, key: tuple[str, str], now: float) -> float:
        failures = self.failures.get(key)
        if failures is None:
            return 0.0
        delay = self.delay_after(key[0], failures.count)
        if now - failures.last_at >= max(delay, self.max_delay_s):  # quiet for long enough: start afresh
            del self.failures[key]
            return 0.0
        return max(0.0, failures.last_at + delay - now)

    def _count(self, key: tuple[str, str], now: float) -> None:
        failures = self.failures.pop(key, None) or Failures(0, now)
        failures.count += 1
        failures.last_at = now
        self.failures[key] = failures  # most recent last, so the oldest is evicted first
        while len(self.failures) > self.max_tracked_keys:
            self.failures.popitem(last=False)
