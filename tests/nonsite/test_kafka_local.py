"""`nonsite kafka` runs a real Kafka 4 from its Maven jars (one node here; three in test_replication.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from conftest import free_cluster_base

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def nonsite(*args: str, env_extra: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NONSITE_KAFKA_BOOTSTRAP"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "nonsite.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                             request_timeout_ms=10_000, delivery_timeout_ms=60_000)
    try:
        for value in values:
            producer.send(topic, value=value).get(timeout=60)
    finally:
        producer.close()


def consume_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                             consumer_timeout_ms=20_000)
    values = []
    for message in consumer:
        values.append(message.value)
        if len(values) >= expected:
            break
    consumer.close()
    return values


def test_cli_start_status_stop_and_topics_survive_restart(tmp_path):
    data_dir, port = tmp_path / "kafka", free_cluster_base(1)
    started = nonsite("kafka", "start", "--data-dir", str(data_dir), "--port", str(port))
    assert started.returncode == 0, started.stderr
    summary = json.loads(started.stdout.strip().splitlines()[-1])
    bootstrap = summary["bootstrap"]
    assert bootstrap == f"localhost:{port}"
    assert "nonsite.detections" in summary["topics_created"]
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(["nonsite.detections"])}
        admin.close()
        assert described == {"nonsite.detections": 4}  # the partition count the Faust app expects
        produce(bootstrap, "nonsite.detections", [b"kept across restart"])

        status = nonsite("kafka", "status", "--data-dir", str(data_dir))
        assert status.returncode == 0 and json.loads(status.stdout)["brokers_answering"] == 1

        assert nonsite("kafka", "stop", "--data-dir", str(data_dir)).returncode == 0
        assert nonsite("kafka", "status", "--data-dir", str(data_dir)).returncode == 3

        again = nonsite("kafka", "start", "--data-dir", str(data_dir), "--port", str(port))
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout.strip().splitlines()[-1])["topics_created"] == []
        assert consume_all(bootstrap, "nonsite.detections", 1) == [b"kept across restart"]
    finally:
        nonsite("kafka", "stop", "--data-dir", str(data_dir))


def test_auto_create_is_off(kafka_bootstrap):
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_block_ms=3000)
    with pytest.raises(Exception):
        producer.send(f"never.created.{uuid.uuid4().hex[:8]}", b"x").get(timeout=10)
    producer.close(timeout=5)


def test_missing_java_is_one_clear_line(tmp_path):
    result = nonsite("kafka", "start", "--data-dir", str(tmp_path / "k"), env_extra={"PATH": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "nonsite: java not found: install a Java 17+ runtime (apt-get install openjdk-17-jre-headless) "
        "or set NONSITE_KAFKA_BOOTSTRAP to an existing Kafka cluster"]
