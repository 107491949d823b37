"""Replication follows the cluster: on three brokers every topic of the project, the worker's internal
ones included, has three replicas and min.insync.replicas 2, and losing a broker loses no detection.

One real three-node Kafka (started with ``nonsite kafka start --nodes 3``) and one worker serve the
whole module; the broker-loss test runs next to last because it leaves the cluster one broker short, and
the last one stops what is left of the cluster.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from nonsite.config import ConfigError, City
from nonsite.devtools.kafka_local import LocalKafka
from nonsite.kafka.admin import Replication, min_insync_for
from stream.runtime.topics import changelog_topic_name, leader_topic_name
from stream.domain.dedup import CityMap
from stream.domain.engine import incident_id_for
from conftest import free_cluster_base
from stream_support import PROJECT, Detection, Evidence, Reader, WorkerProcess, make_city, to_iso
from test_kafka_local import nonsite

GRIDS = ["G1", "G2", "G3", "G4"]
SCENARIOS = ["sidewalk_parking", "road_occupation", "mobile_vendor", "material_piling", "stray_dog"]
ZONES = ["z1", "z-no_vending", "z-storefront", "z-no_piling", "z-road", "z-plaza"]
REQUIRED = (3, 2)  # replication factor, min.insync.replicas
RECOVERY_S = 150


# ---------------------------------------------------------------- without Kafka
@pytest.mark.parametrize("brokers, factor, min_insync", [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)])
def test_auto_replication_follows_the_broker_count(brokers: int, factor: int, min_insync: int):
    replication = Replication.resolve("auto", brokers)
    assert (replication.factor, replication.min_insync) == (factor, min_insync)


def test_explicit_replication_is_honoured_up_to_the_broker_count():
    assert Replication.resolve(2, 3).factor == 2
    assert (Replication.resolve(5, 5).factor, min_insync_for(5)) == (5, 3)
    with pytest.raises(ConfigError, match=r"^kafka.replication_factor: 3 is more than the 1 broker\(s\) of the Kafka "
                                          r"cluster at k:9092; set it to auto or at most 1$"):
        Replication.resolve(3, 1, "k:9092")


# ---------------------------------------------------------------- a real three-node cluster
@dataclass
class Cluster:
    bootstrap: str
    local: LocalKafka
    started: dict  # what `nonsite kafka start --nodes 3` printed
    log: str  # its stderr


@pytest.fixture(scope="module")
def cluster3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("kafka3") / "data"
    began = time.monotonic()
    run = nonsite("kafka", "start", "--nodes", "3", "--data-dir", str(data_dir), "--port", str(free_cluster_base(3)),
                  timeout=300)
    local = LocalKafka.from_state(data_dir)
    previous = os.environ.get("NONSITE_KAFKA_BOOTSTRAP")
    try:
        assert run.returncode == 0, run.stderr[-2000:]
        started = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"three-node cluster started in {time.monotonic() - began:.1f}s")
        os.environ["NONSITE_KAFKA_BOOTSTRAP"] = started["bootstrap"]  # make_city / the worker use it
        yield Cluster(started["bootstrap"], local, started, run.stderr)
    finally:
        if previous is None:
            os.environ.pop("NONSITE_KAFKA_BOOTSTRAP", None)
        else:
            os.environ["NONSITE_KAFKA_BOOTSTRAP"] = previous
        if local is not None:
            local.stop()


@pytest.fixture(scope="module")
def worker3(cluster3: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[City, WorkerProcess]]:
    """A test city (own topics and app id, shipped kafka settings) and its worker on the three-node cluster."""
    tmp = tmp_path_factory.mktemp("worker3")
    city = make_city(tmp, GRIDS, acceptance_minutes=60)
    assert city.kafka.replication_factor == "auto"  # the shipped configs/nonsite.yaml
    worker = WorkerProcess(city, tmp).start()
    try:
        yield city, worker
    finally:
        worker.stop()


def topic_replication(bootstrap: str, names: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """``topic -> (fewest replicas of a partition, effective min.insync.replicas)``, all topics by default."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        names = names if names is not None else admin.list_topics()
        described = {t["name"]: t for t in admin.describe_topics(names)}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names],
                                         config_filter="all")["topic"]
        return {n: (min(len(p["replica_nodes"]) for p in described[n]["partitions"]),
                    int(configs[n]["min.insync.replicas"]["value"])) for n in names}
    finally:
        admin.close()


def wait_for_topics(bootstrap: str, names: list[str], timeout: float = 90.0) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout
        while not set(names) <= set(admin.list_topics()):
            assert time.monotonic() < deadline, f"topics {set(names) - set(admin.list_topics())} never appeared"
            time.sleep(0.5)
    finally:
        admin.close()


@pytest.mark.kafka
@pytest.mark.slow
def test_kafka_start_with_three_nodes_replicates_and_states_it(cluster3: Cluster):
    started = cluster3.started
    assert started["replication"] == {"setting": "auto", "brokers": 3, "replication_factor": 3,
                                      "min_insync_replicas": 2}
    shipped = set(started["topics_created"])
    assert "nonsite.detections" in shipped and len(shipped) == 12  # the worker's three internal topics included
    assert started["topics"] == {name: {"replication_factor": 3, "min_insync_replicas": 2} for name in shipped}
    assert topic_replication(cluster3.bootstrap, sorted(shipped)) == {name: REQUIRED for name in shipped}
    assert "kafka topics" in cluster3.log and "'nonsite.alerts': 'rf=3 min.insync=2'" in cluster3.log


@pytest.mark.kafka
@pytest.mark.slow
def test_worker_topics_internal_ones_included_have_three_replicas(cluster3: Cluster, worker3):
    city, worker = worker3
    internal = [f"{city.stream.app_id}.cases", changelog_topic_name(city, "case_state"), leader_topic_name(city),
                "__consumer_offsets"]
    wait_for_topics(cluster3.bootstrap, internal)  # the leader and offsets topics appear once the worker runs
    wait_for_log(worker, "kafka topics")
    everything = topic_replication(cluster3.bootstrap)
    assert set(internal) | set(city.kafka.topics.all().values()) <= set(everything)
    assert {name: state for name, state in everything.items() if state != REQUIRED} == {}
    assert f"'{leader_topic_name(city)}': 'rf=3 min.insync=2'" in worker.log_path.read_text()


def wait_for_log(worker: WorkerProcess, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in worker.log_path.read_text(errors="replace"):
        assert worker.process.poll() is None, f"worker exited: {worker.log_tail()}"
        assert time.monotonic() < deadline, f"no {text!r} in the worker's log: {worker.log_tail()}"
        time.sleep(0.5)


def config_with(tmp: Path, kafka: dict) -> Path:
    """A copy of configs/ with some ``kafka`` settings changed."""
    folder = tmp / "configs"
    folder.mkdir(parents=True)
    for name in ("cameras.yaml", "scenarios.yaml", "grids.yaml"):
        (folder / name).write_text((PROJECT / "configs" / name).read_text(encoding="utf-8"), encoding="utf-8")
    system = yaml.safe_load((PROJECT / "configs" / "nonsite.yaml").read_text(encoding="utf-8"))
    system["kafka"].update(kafka)
    (folder / "nonsite.yaml").write_text(yaml.safe_dump(system, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.mark.kafka
@pytest.mark.slow
def test_existing_topics_are_checked_against_the_required_replication(cluster3: Cluster, tmp_path: Path):
    tag = str(int(time.time() * 1000))
    weak_isr, one_replica = f"old.isr.{tag}", f"old.single.{tag}"
    admin = KafkaAdminClient(bootstrap_servers=cluster3.bootstrap)
    admin.create_topics([NewTopic(weak_isr, 4, 3, topic_configs={"min.insync.replicas": "1", "retention.ms": "3600000",
                                                                 "max.message.bytes": "2000000"}),
                         NewTopic(one_replica, 4, 1)], timeout_ms=30_000)
    admin.close()
    topics = {"detections": weak_isr}
    env = {"NONSITE_KAFKA_BOOTSTRAP": cluster3.bootstrap}

    raised = nonsite("--config", str(config_with(tmp_path / "a", {"topics": topics})), "kafka", "start", env_extra=env)
    assert raised.returncode == 0, raised.stderr
    assert json.loads(raised.stdout.strip().splitlines()[-1])["topics"][weak_isr] == {
        "replication_factor": 3, "min_insync_replicas": 2}
    assert "raised min.insync.replicas of existing topics" in raised.stderr
    assert topic_replication(cluster3.bootstrap, [weak_isr]) == {weak_isr: REQUIRED}
    admin = KafkaAdminClient(bootstrap_servers=cluster3.bootstrap)
    kept = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, weak_isr)])["topic"][weak_isr]
    admin.close()
    assert kept["max.message.bytes"]["value"] == "2000000"  # settings outside the policy are left alone
    assert kept["retention.ms"]["value"] == str(7 * 86_400_000)  # its lifecycle is the detections' (docs/topics.md)
    assert re.search(rf"kafka topic setting changed +kind=detections now=604800000 setting=retention.ms "
                     rf"topic={re.escape(weak_isr)} was=3600000", raised.stderr), raised.stderr

    topics["alerts"] = one_replica
    refused = nonsite("--config", str(config_with(tmp_path / "b", {"topics": topics})), "kafka", "start",
                      env_extra=env)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"nonsite: 1 topic(s) have fewer replicas than the 3 required (kafka.replication_factor: auto, 3 broker(s)): "
        f"{one_replica} (1); add replicas with kafka-reassign-partitions, or set kafka.replication_factor: 1 "
        f"to accept them")

    accepted = nonsite("--config", str(config_with(tmp_path / "c", {"topics": topics, "replication_factor": 1})),
                       "kafka", "start", env_extra=env)
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout.strip().splitlines()[-1])["replication"]["replication_factor"] == 1

    too_many = nonsite("--config", str(config_with(tmp_path / "d", {"replication_factor": 4})), "kafka", "start",
                       env_extra=env)
    assert too_many.returncode == 2
    assert too_many.stderr.strip().splitlines() == [
        f"nonsite: config error: kafka.replication_factor: 4 is more than the 3 broker(s) of the Kafka cluster at "
        f"{cluster3.bootstrap}; set it to auto or at most 3"]


# ---------------------------------------------------------------- losing a broker (runs last)
def planned(round_: str, grids: list[str], base: float) -> list[Detection]:
    """One start detection per camera × scenario × zone: each opens its own incident."""
    plan = []
    for g, grid in enumerate(grids):
        camera = f"cam-{grid}"
        for s, scenario in enumerate(SCENARIOS):
            for z, zone in enumerate(ZONES):
                violation = f"{camera}/{round_}-{s}-{z}/{scenario}"
                plan.append(Detection(
                    event_id=f"{violation}#start", kind="start", violation_id=violation, camera_id=camera,
                    scenario=scenario, zone_id=zone, object_class="car", track_id=s * 10 + z, confidence=0.7,
                    bbox=[0.1, 0.5, 0.3, 0.9], first_seen=to_iso(base), observed_at=to_iso(base + 0.01 * z),
                    dwell_s=130.0, evidence=[Evidence(kind="annotated", sha256=f"{g}{s}{z}".rjust(64, "0"), uri="e")]))
    return plan


def send_acknowledged(producer: KafkaProducer, topic: str, detections: list[Detection]) -> list[Detection]:
    """Send each detection and wait for Kafka's acknowledgement (acks=all); returns those acknowledged."""
    futures = [(d, producer.send(topic, key=d.camera_id.encode(), value=d.to_json())) for d in detections]
    acknowledged = []
    for detection, future in futures:
        try:
            future.get(timeout=120)
            acknowledged.append(detection)
        except Exception as exc:  # not acknowledged: the producer may drop it, the test may not count it
            print(f"not acknowledged: {detection.event_id}: {exc!r}")
    return acknowledged


def merged_violations(items: list[dict]) -> set[str]:
    """The violation ids the latest snapshot of every incident holds."""
    latest = {i["incident_id"]: i for i in items if i}
    return {v for incident in latest.values() for v in incident["violation_ids"]}


def busiest_broker(bootstrap: str, topics: list[str]) -> int:
    """The broker leading the most partitions of ``topics``."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        leaders = [p["leader_id"] for t in admin.describe_topics(topics) for p in t["partitions"]]
    finally:
        admin.close()
    return max(set(leaders), key=leaders.count)


@pytest.mark.kafka
@pytest.mark.slow
def test_losing_a_broker_loses_no_acknowledged_detection(cluster3: Cluster, worker3):
    city, worker = worker3
    wait_for_log(worker, "kafka topics")
    city_map = CityMap.build(city)
    base = float(int(time.time()))
    before, after = planned("before", GRIDS, base), planned("after", GRIDS, base + 1)
    producer = KafkaProducer(bootstrap_servers=city.kafka.bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                             request_timeout_ms=10_000, delivery_timeout_ms=120_000, retry_backoff_ms=200)
    events = Reader(city.kafka.bootstrap, city.kafka.topics.case_events)
    incidents = Reader(city.kafka.bootstrap, city.kafka.topics.incidents)
    detected = lambda items: {e["incident_id"] for e in items if e and e["action"] == "detect"}  # noqa: E731
    try:
        acknowledged = send_acknowledged(producer, city.kafka.topics.detections, before)
        events.wait_for(lambda items: len(detected(items)) >= len(before) // 3, 120, "the worker at work")
        victim = busiest_broker(city.kafka.bootstrap, [city.kafka.topics.detections, f"{city.stream.app_id}.cases",
                                                       changelog_topic_name(city, "case_state")])
        killed_at = time.monotonic()
        cluster3.local.stop_node(victim, hard=True)  # SIGKILL: no clean leadership hand-over
        assert victim not in cluster3.local.running_pids()
        acknowledged += send_acknowledged(producer, city.kafka.topics.detections, after)
        assert len(acknowledged) == len(before) + len(after), "Kafka refused detections with one broker down"

        # the "after" detections are at the sites of the "before" ones, so they join those open cases
        wanted = {d.violation_id for d in acknowledged}
        incidents.wait_for(lambda items: merged_violations(items) >= wanted, RECOVERY_S,
                           "every acknowledged detection in an incident")
        print(f"all {len(acknowledged)} detections merged {time.monotonic() - killed_at:.1f}s after broker {victim} "
              f"was killed")
        assert worker.process.poll() is None, worker.log_tail()
        opened = {incident_id_for(city_map.district_of_camera[d.camera_id], d.event_id) for d in before}
        assert detected(events.drain()) == opened
        latest = {i["incident_id"]: i for i in incidents.drain() if i}
        assert sum(i["detections"] for i in latest.values()) == len(acknowledged)  # each counted once
    finally:
        producer.close(timeout=10)
        events.close()
        incidents.close()


@pytest.mark.kafka
@pytest.mark.slow
def test_a_cluster_a_broker_short_stops_at_once(cluster3: Cluster):
    """Runs last: a node lost (the test above) and the rest stopped together, none waits out a lost quorum."""
    if len(cluster3.local.running_pids()) == 3:
        cluster3.local.stop_node(3, hard=True)
    began = time.monotonic()
    cluster3.local.stop()
    took = time.monotonic() - began
    assert cluster3.local.running_pids() == {}
    assert took < 20, f"the cluster took {took:.1f}s to stop"
