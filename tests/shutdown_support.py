"""Helpers for the tests that stop a process while Kafka is down (issue 11, item 5): a broker of the test's own
(stopped hard mid-test), waiting for a process to serve HTTP, and the time a SIGTERM takes."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import httpx

from conftest import free_port_block
from nonsite.devtools.kafka_local import LocalKafka

STOP_WITHIN_S = 10.0  # what a supervisor (systemd, Docker) waits after SIGTERM before SIGKILL


@contextmanager
def own_broker(tmp_path: Path, monkeypatch) -> Iterator[LocalKafka]:
    """A one-node Kafka for this test alone (NONSITE_KAFKA_BOOTSTRAP points at it), stopped at the end."""
    broker = LocalKafka(tmp_path / "kafka", nodes=1, base_port=free_port_block(2))
    monkeypatch.setenv("NONSITE_KAFKA_BOOTSTRAP", broker.start())
    try:
        yield broker
    finally:
        broker.stop()


def wait_serving(process: subprocess.Popen, url: str, log_tail: Callable[[], str], timeout: float = 90.0) -> None:
    """Until ``url`` answers 200; fails with the log when the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log_tail()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer:\n{log_tail()}")


def sigterm_took(process: subprocess.Popen, timeout: float = 60.0) -> float:
    """Send SIGTERM and wait for the exit; returns the seconds it took (``timeout`` and more if it never exits)."""
    began = time.monotonic()
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    return time.monotonic() - began
