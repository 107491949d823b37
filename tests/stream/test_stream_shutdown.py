"""The worker stops when told to, even while Kafka is down (issue 11): SIGTERM ends it within 10 s, and its log
does not fill with one connection error per retry."""
from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from conftest import free_port_block
from nonsite.devtools.kafka_local import LocalKafka
from stream_support import WorkerProcess, make_city

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
STOP_WITHIN_S = 10.0


def wait_serving(worker: WorkerProcess, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.process.poll() is None, worker.log_tail()
        try:
            if httpx.get(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the worker did not start:\n{worker.log_tail()}")


def test_sigterm_stops_the_worker_within_10_s_while_kafka_is_down(tmp_path, monkeypatch) -> None:
    broker = LocalKafka(tmp_path / "kafka", nodes=1, base_port=free_port_block(2))
    monkeypatch.setenv("NONSITE_KAFKA_BOOTSTRAP", broker.start())
    worker = None
    try:
        city = make_city(tmp_path, ["G1"])
        worker = WorkerProcess(city, tmp_path).start()
        wait_serving(worker)
        time.sleep(5)  # past the first commits
        broker.stop_node(1, hard=True)
        time.sleep(20)  # the worker notices and retries
        logged_while_down = worker.log_path.stat().st_size
        began = time.monotonic()
        os.kill(worker.process.pid, signal.SIGTERM)
        try:
            worker.process.wait(timeout=60)
        finally:
            took = time.monotonic() - began
        assert took <= STOP_WITHIN_S, f"stopped after {took:.1f} s:\n{worker.log_tail()}"
        assert logged_while_down < 200_000, f"{logged_while_down} bytes of log in 20 s without Kafka"
    finally:
        if worker is not None:
            worker.kill()
        broker.stop()
