"""``nonsite web`` stops when told to, even while Kafka is down (issue 11, item 5): SIGTERM ends it within 10 s."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT, free_port_block
from nonsite.config import load_city
from nonsite.kafka.admin import create_city_topics
from shutdown_support import STOP_WITHIN_S, own_broker, sigterm_took, wait_serving

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_sigterm_stops_the_web_within_10_s_while_kafka_is_down(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "configs"
    shutil.copytree(PROJECT / "configs", config)
    settings = yaml.safe_load((config / "nonsite.yaml").read_text(encoding="utf-8"))
    tag = uuid.uuid4().hex[:8]
    settings["kafka"]["topics"] = {k: f"t{tag}.{k.replace('_', '-')}" for k in settings["kafka"]["topics"]}
    settings["history"] = {**settings.get("history", {}), "database": str(tmp_path / "history.sqlite")}
    (config / "nonsite.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    port = free_port_block(1)
    log_path = tmp_path / "web.log"
    with own_broker(tmp_path, monkeypatch) as broker:
        create_city_topics(load_city(config), os.environ["NONSITE_KAFKA_BOOTSTRAP"])
        command = [sys.executable, "-m", "nonsite.cli", "--config", str(config), "web", "--port", str(port)]
        with open(log_path, "ab") as log:
            web = subprocess.Popen(command, cwd=PROJECT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        tail = lambda: log_path.read_text(errors="replace")[-3000:]  # noqa: E731
        try:
            wait_serving(web, f"http://127.0.0.1:{port}/api/health", tail)
            broker.stop_node(1, hard=True)
            time.sleep(20)  # the read model notices and retries
            took = sigterm_took(web)
            assert took <= STOP_WITHIN_S, f"stopped after {took:.1f} s:\n{tail()}"
            print(f"SIGTERM with Kafka down: the web stopped in {took:.1f} s")
        finally:
            if web.poll() is None:
                web.kill()
                web.wait(timeout=30)
