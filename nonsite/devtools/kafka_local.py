"""A real Apache Kafka (4.x, KRaft) on this machine, run from its Maven Central jars.

``docker/kafka/pom.xml`` names the broker and a log4j2 binding; Maven copies them into
``.cache/kafka/libs`` once.  Each node gets its own ``server.properties``, ``log4j2.properties``
and log folder under the data dir, is formatted once, and runs as a background JVM with a
bounded heap.  ``cluster.json`` in the data dir remembers the processes for ``stop``/``status``.
For development, the demo and the tests; topics are created through :mod:`nonsite.kafka.admin`, with
the lifecycle of :mod:`nonsite.kafka.lifecycle`, as the worker and the docker deployment create them.

Example::

    >>> cluster = LocalKafka(Path("/tmp/k"), nodes=1, base_port=19092)   # doctest: +SKIP
    >>> cluster.start(); cluster.bootstrap                               # doctest: +SKIP
    'localhost:19092'
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import structlog

from nonsite.errors import KafkaSetupError
from nonsite.kafka.admin import AUTO_MAX_REPLICAS, broker_count, min_insync_for
from nonsite.paths import PROJECT_ROOT

log = structlog.get_logger("nonsite.kafka")

POM = PROJECT_ROOT / "docker" / "kafka" / "pom.xml"
CACHE = PROJECT_ROOT / ".cache" / "kafka"
LIBS = CACHE / "libs"
DEFAULT_DATA_DIR = PROJECT_ROOT / "var" / "kafka"
HEAP = os.environ.get("NONSITE_KAFKA_HEAP", "512m")
PORT_STEP = 100  # node N listens on base + (N-1)*100, its controller on that + 1


@dataclass(frozen=True)
class Node:
    node_id: int
    broker_port: int
    controller_port: int
    directory: Path

    @property
    def log_dir(self) -> Path:
        return self.directory / "data"


def _require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise KafkaSetupError(f"{tool} not found: {hint}")
    return path


def _java_major() -> int:
    java = _require("java", "install a Java 17+ runtime (apt-get install openjdk-17-jre-headless) "
                            "or set NONSITE_KAFKA_BOOTSTRAP to an existing Kafka cluster")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    version = out.split('"')[1] if '"' in out else "0"
    major = version.split(".")[0]
    return int(major) if major.isdigit() else 0


def ensure_jars(quiet: bool = True) -> Path:
    """Resolve the broker's jars with Maven once; re-resolve when the POM changes."""
    if _java_major() < 17:
        raise KafkaSetupError("Java 17+ is required for Kafka 4 (apt-get install openjdk-17-jre-headless)")
    stamp = CACHE / "pom.sha256"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if LIBS.is_dir() and stamp.exists() and stamp.read_text() == digest:
        return LIBS
    mvn = _require("mvn", "install Maven (apt-get install maven) to fetch the Kafka jars from Maven Central")
    shutil.rmtree(LIBS, ignore_errors=True)
    LIBS.mkdir(parents=True)
    log.info("resolving Kafka jars with Maven", pom=str(POM), into=str(LIBS))
    command = [mvn, "-B", "-f", str(POM), "dependency:copy-dependencies", "-DincludeScope=runtime",
               f"-DoutputDirectory={LIBS}"] + (["-q"] if quiet else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise KafkaSetupError(f"Maven could not resolve {POM}: {' | '.join(tail)}")
    stamp.write_text(digest)
    return LIBS


def port_open(port: int, host: str = "localhost", timeout: float = 0.5) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child still answers kill(0)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class LocalKafka:
    """One to three KRaft nodes (combined broker+controller) on localhost."""

    def __init__(self, data_dir: Path = DEFAULT_DATA_DIR, nodes: int = 1, base_port: int = 9092):
        if nodes not in (1, 3):
            raise ValueError("nodes must be 1 or 3")
        self.data_dir = Path(data_dir).resolve()
        self.nodes = [Node(i, base_port + (i - 1) * PORT_STEP, base_port + (i - 1) * PORT_STEP + 1,
                           self.data_dir / f"node-{i}") for i in range(1, nodes + 1)]

    @classmethod
    def from_state(cls, data_dir: Path = DEFAULT_DATA_DIR) -> Optional["LocalKafka"]:
        state = cls.state_file_of(data_dir)
        if not state.exists():
            return None
        saved = json.loads(state.read_text())
        return cls(Path(data_dir), nodes=len(saved["nodes"]), base_port=saved["base_port"])

    @staticmethod
    def state_file_of(data_dir: Path) -> Path:
        return Path(data_dir).resolve() / "cluster.json"

    @property
    def state_file(self) -> Path:
        return self.state_file_of(self.data_dir)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"localhost:{n.broker_port}" for n in self.nodes)

    # ------------------------------------------------------------ configuration files
    def _server_properties(self, node: Node) -> str:
        voters = ",".join(f"{n.node_id}@localhost:{n.controller_port}" for n in self.nodes)
        replicas = min(AUTO_MAX_REPLICAS, len(self.nodes))
        min_isr = min_insync_for(replicas)
        lines = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://localhost:{node.broker_port},CONTROLLER://localhost:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://localhost:{node.broker_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": node.log_dir,
            "num.partitions": 1,
            # topics created without settings (and the brokers' own) get the replication of the cluster
            "default.replication.factor": replicas,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": 8,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "false",
            # no log.retention.*: the broker keeps Kafka's default (7 days), as in docker/compose.yaml; the
            # project's topics carry their own lifecycle (nonsite.kafka.lifecycle, docs/topics.md)
        }
        return "".join(f"{key}={value}\n" for key, value in lines.items())

    @staticmethod
    def _log4j2_properties(node: Node) -> str:
        return (
            "status = warn\n"
            "appender.file.type = RollingFile\n"
            "appender.file.name = FILE\n"
            f"appender.file.fileName = {node.directory}/logs/server.log\n"
            f"appender.file.filePattern = {node.directory}/logs/server.log.%i\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "appender.file.policies.type = Policies\n"
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy\n"
            "appender.file.policies.size.size = 20MB\n"
            "appender.file.strategy.type = DefaultRolloverStrategy\n"
            "appender.file.strategy.max = 3\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = FILE\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
            "logger.state.name = state.change.logger\nlogger.state.level = WARN\n"
        )

    def _java(self, node: Node, main: str, *args: str, heap: str = "128m") -> list[str]:
        return ["java", f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dkafka.logs.dir={node.directory / 'logs'}",
                f"-Dlog4j2.configurationFile=file:{node.directory / 'log4j2.properties'}",
                "-cp", f"{LIBS}/*", main, *args]

    def _prepare(self, node: Node, cluster_id: str) -> None:
        (node.directory / "logs").mkdir(parents=True, exist_ok=True)
        (node.directory / "server.properties").write_text(self._server_properties(node))
        (node.directory / "log4j2.properties").write_text(self._log4j2_properties(node))
        if (node.log_dir / "meta.properties").exists():
            return
        result = subprocess.run(self._java(node, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                                           "-c", str(node.directory / "server.properties")),
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise KafkaSetupError(f"formatting {node.log_dir} failed: {result.stderr.strip()[-300:]}")

    def _cluster_id(self) -> str:
        id_file = self.data_dir / "cluster.id"
        if not id_file.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            cluster_id = "-"
            while cluster_id.startswith("-"):  # as Kafka's Uuid: a leading '-' would read as a flag
                cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
            id_file.write_text(cluster_id)
        return id_file.read_text().strip()

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 90.0) -> str:
        """Start every node (idempotent), wait until all brokers answer metadata; return bootstrap."""
        ensure_jars()
        running = self.running_pids()
        if running and len(running) == len(self.nodes):
            self.wait_ready(timeout)
            return self.bootstrap
        for node in self.nodes:
            if node.node_id not in running and (port_open(node.broker_port) or port_open(node.controller_port)):
                raise KafkaSetupError(f"port {node.broker_port} or {node.controller_port} is already in use by "
                                      f"another process; stop it or choose --port")
        cluster_id = self._cluster_id()
        pids = dict(running)
        for node in self.nodes:
            self._prepare(node, cluster_id)
            if node.node_id in running:
                continue
            out = open(node.directory / "logs" / "stdout.log", "ab")
            process = subprocess.Popen(self._java(node, "kafka.Kafka", str(node.directory / "server.properties"),
                                                  heap=HEAP),
                                       stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
            pids[node.node_id] = process.pid
        self._save_state(pids)
        self.wait_ready(timeout)
        log.info("kafka ready", bootstrap=self.bootstrap, nodes=len(self.nodes), data_dir=str(self.data_dir))
        return self.bootstrap

    def _save_state(self, pids: dict[int, int]) -> None:
        base_port = self.nodes[0].broker_port
        self.state_file.write_text(json.dumps({"base_port": base_port, "bootstrap": self.bootstrap,
                                               "nodes": {str(k): v for k, v in pids.items()}}, indent=1))

    def running_pids(self) -> dict[int, int]:
        if not self.state_file.exists():
            return {}
        saved = json.loads(self.state_file.read_text())
        return {int(k): pid for k, pid in saved["nodes"].items() if _pid_alive(pid)}

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            dead = [n.node_id for n in self.nodes if n.node_id not in self.running_pids()]
            if dead:
                raise KafkaSetupError(f"Kafka node {dead[0]} exited during start; see "
                                      f"{self.data_dir}/node-{dead[0]}/logs/server.log")
            try:
                # a short wait: a probe sent before the broker listens would otherwise hold the loop 30 s
                if broker_count(self.bootstrap, wait_s=3.0) >= len(self.nodes):
                    return
                last_error = "not all brokers registered yet"
            except Exception as exc:  # not up yet
                last_error = str(exc)
            time.sleep(0.5)
        raise KafkaSetupError(f"Kafka at {self.bootstrap} did not answer within {timeout:.0f}s ({last_error})")

    def stop_node(self, node_id: int, hard: bool = False, timeout: float = 60.0) -> None:
        pid = self.running_pids().get(node_id)
        if pid is not None:
            _terminate([pid], hard, timeout)

    def stop(self, timeout: float = 60.0) -> None:
        # all at once: one by one, the last nodes lose their controller quorum and wait it out before exiting
        _terminate(list(self.running_pids().values()), hard=False, timeout=timeout)

    def status(self) -> dict[str, object]:
        pids = self.running_pids()
        try:
            brokers = broker_count(self.bootstrap) if pids else 0
        except Exception:
            brokers = 0
        return {"bootstrap": self.bootstrap, "data_dir": str(self.data_dir), "nodes": len(self.nodes),
                "running": sorted(pids), "brokers_answering": brokers}


def _terminate(pids: list[int], hard: bool, timeout: float) -> None:
    """Signal every process, wait for them all until ``timeout``, then SIGKILL those still running."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_pid_alive(pid) for pid in pids):
        time.sleep(0.2)
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
    for pid in pids:
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
