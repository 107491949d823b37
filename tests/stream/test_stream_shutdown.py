"""The worker stops when told to, even while Kafka is down (issue 11): SIGTERM ends it within 10 s, and its log
does not fill with one connection error per retry."""
from __future__ import annotations

import time

import pytest

from shutdown_support import STOP_WITHIN_S, own_broker, sigterm_took, wait_serving
from stream_support import WorkerProcess, make_city

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_sigterm_stops_the_worker_within_10_s_while_kafka_is_down(tmp_path, monkeypatch) -> None:
    worker = None
    with own_broker(tmp_path, monkeypatch) as broker:
        try:
            city = make_city(tmp_path, ["G1"])
            worker = WorkerProcess(city, tmp_path).start()
            wait_serving(worker.process, f"http://127.0.0.1:{worker.web_port}/metrics", worker.log_tail)
            time.sleep(5)  # past the first commits
            broker.stop_node(1, hard=True)
            time.sleep(20)  # the worker notices and retries
            logged_while_down = worker.log_path.stat().st_size
            took = sigterm_took(worker.process)
            assert took <= STOP_WITHIN_S, f"stopped after {took:.1f} s:\n{worker.log_tail()}"
            assert logged_while_down < 200_000, f"{logged_while_down} bytes of log in 20 s without Kafka"
        finally:
            if worker is not None:
                worker.kill()
