"""A real Apache Kafka (4.x, KRaft) on this machine, run from its Maven Central jars.

``docker/kafka/pom.xml`` names the broker and a log4j2 binding; Maven copies them into
``.cache/kafka/libs`` once.  Each node gets its own ``server.properties``, ``log4j2.properties``
and log folder under the data dir, is formatted once, and runs as a background JVM with a
bounded heap.  ``cluster.json`` in the data dir remembers the processes for ``stop``/``status``.

Example::

    >>> cluster = LocalKafka(Path("/tmp/k"), nodes=1, base_port=19092)   # doctest: +SKIP
    >>> cluster.start(); cluster.bootstrap                               # doctest: +SKIP
    'localhost:19092'
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

import structlog

from nonsite.paths import PROJECT_ROOT

log = structlog.get_logger("nonsite.kafka")

POM = PROJECT_ROOT / "docker" / "kafka" / "pom.xml"
CACHE = PROJECT_ROOT / ".cache" / "kafka"
LIBS = CACHE / "libs"
DEFAULT_DATA_DIR = PROJECT_ROOT / "var" / "kafka"
HEAP = os.environ.get("NONSITE_KAFKA_HEAP", "512m")
PORT_STEP = 100  # node N listens on base + (N-1)*100, its controller on that + 1
AUTO = "auto"  # kafka.replication_factor: follow the cluster
AUTO_MAX_REPLICAS = 3  # ``auto`` replicates to min(3, brokers)
MIN_INSYNC = "min.insync.replicas"


class KafkaSetupError(RuntimeError):
    """Something outside Python is missing or broken; ``str()`` is the one line for the user."""


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
            "log.retention.hours": 24 * 30,
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
                if broker_count(self.bootstrap) >= len(self.nodes):
                    return
                last_error = "not all brokers registered yet"
            except Exception as exc:  # not up yet
                last_error = str(exc)
            time.sleep(0.5)
        raise KafkaSetupError(f"Kafka at {self.bootstrap} did not answer within {timeout:.0f}s ({last_error})")

    def stop_node(self, node_id: int, hard: bool = False, timeout: float = 60.0) -> None:
        pid = self.running_pids().get(node_id)
        if pid is not None:
            _terminate(pid, hard, timeout)

    def stop(self, timeout: float = 60.0) -> None:
        for pid in self.running_pids().values():
            _terminate(pid, hard=False, timeout=timeout)

    def status(self) -> dict[str, object]:
        pids = self.running_pids()
        try:
            brokers = broker_count(self.bootstrap) if pids else 0
        except Exception:
            brokers = 0
        return {"bootstrap": self.bootstrap, "data_dir": str(self.data_dir), "nodes": len(self.nodes),
                "running": sorted(pids), "brokers_answering": brokers}


def _terminate(pid: int, hard: bool, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.2)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def cluster_brokers(bootstrap: str) -> tuple[int, int]:
    """``(registered, live)``: the brokers the cluster knows, and those of them not fenced (up)."""
    from kafka import KafkaAdminClient

    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)  # refused connections are expected while a broker starts
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, client_id="nonsite-probe")
        try:
            brokers = admin.describe_cluster()["brokers"]  # fenced (stopped) brokers included
        finally:
            admin.close()
    finally:
        kafka_log.setLevel(level)
    return len(brokers), len([b for b in brokers if not b.get("is_fenced")])


def broker_count(bootstrap: str) -> int:
    """How many brokers are up (registered and not fenced), asked through ``bootstrap``."""
    return cluster_brokers(bootstrap)[1]


def ensure_topics(bootstrap: str, topics: Iterable[str], partitions: int, replication_factor: int,
                  configs: Optional[dict[str, str]] = None) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="nonsite-topics")
    try:
        existing = set(admin.list_topics())
        wanted = [NewTopic(name, partitions, replication_factor, topic_configs=dict(configs or {}))
                  for name in topics if name not in existing]
        if wanted:
            try:
                admin.create_topics(wanted, timeout_ms=30_000)
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in wanted]
    finally:
        admin.close()


# ---------------------------------------------------------------- replication of the project's topics
class ReplicationError(KafkaSetupError):
    """Existing topics are replicated less than required; ``str()`` is the one line for the operator."""


def min_insync_for(factor: int) -> int:
    """``min.insync.replicas`` for ``factor`` replicas: a majority from three replicas on (3 -> 2), else 1.

    With 3 replicas and 2 in sync, an ``acks=all`` write is on two brokers before it is acknowledged,
    and the topic stays writable with one broker down.
    """
    return factor // 2 + 1 if factor >= 3 else 1


@dataclass(frozen=True)
class Replication:
    """What every topic of the project must have, derived from ``kafka.replication_factor``."""

    factor: int
    min_insync: int
    brokers: int  # brokers the cluster has registered (a stopped one included)
    setting: str  # "auto" or the configured number

    @classmethod
    def resolve(cls, setting: Union[int, str], brokers: int, bootstrap: str = "") -> "Replication":
        """``auto`` -> min(3, brokers); a number is honoured, or refused (ConfigError) above ``brokers``."""
        from nonsite.config import ConfigError

        if brokers < 1:
            raise KafkaSetupError(f"the Kafka cluster at {bootstrap or '?'} has no broker")
        if setting == AUTO:
            factor = min(AUTO_MAX_REPLICAS, brokers)
        else:
            factor = int(setting)
            if factor > brokers:
                raise ConfigError(f"kafka.replication_factor: {factor} is more than the {brokers} broker(s) of the "
                                  f"Kafka cluster at {bootstrap or '?'}; set it to auto or at most {brokers}")
        return cls(factor, min_insync_for(factor), brokers, str(setting))

    def topic_configs(self) -> dict[str, str]:
        return {MIN_INSYNC: str(self.min_insync)}

    def as_dict(self) -> dict[str, object]:
        return {"setting": self.setting, "brokers": self.brokers, "replication_factor": self.factor,
                "min_insync_replicas": self.min_insync}


def replication_for(bootstrap: str, setting: Union[int, str]) -> Replication:
    """Resolve ``setting`` against the cluster at ``bootstrap``; warns when some of its brokers are down."""
    registered, live = cluster_brokers(bootstrap)
    if live < registered:
        log.warning("kafka brokers down", bootstrap=bootstrap, registered=registered, up=live)
    return Replication.resolve(setting, registered, bootstrap)


@dataclass(frozen=True)
class TopicSpec:
    """A topic the project needs: its partitions and its own settings (min.insync.replicas is added)."""

    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicReplication:
    """A topic as the cluster has it after :func:`replicate_topics`."""

    name: str
    replication_factor: int  # the fewest replicas of any of its partitions
    min_insync_replicas: int  # effective value (topic setting or broker default)
    created: bool = False
    raised_min_insync: bool = False  # was lower, set by incremental alter configs

    def as_dict(self) -> dict[str, object]:
        return {"replication_factor": self.replication_factor, "min_insync_replicas": self.min_insync_replicas}


@dataclass(frozen=True)
class TopicsReport:
    replication: Replication
    topics: tuple[TopicReplication, ...]

    @property
    def created(self) -> list[str]:
        return [t.name for t in self.topics if t.created]

    @property
    def raised(self) -> list[str]:
        return [t.name for t in self.topics if t.raised_min_insync]

    def per_topic(self) -> dict[str, dict[str, object]]:
        return {t.name: t.as_dict() for t in self.topics}

    def log_fields(self) -> dict[str, object]:
        """For one structured log line: the requirement, and ``topic: rf=3 min.insync=2`` per topic."""
        return {**self.replication.as_dict(), "created": self.created, "raised_min_insync": self.raised,
                "topics": {t.name: f"rf={t.replication_factor} min.insync={t.min_insync_replicas}"
                           for t in self.topics}}


def _admin(bootstrap: str, client_id: str):  # type: ignore[no-untyped-def]
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id, request_timeout_ms=30_000)


def describe_replication(admin, names: Sequence[str]) -> dict[str, tuple[int, int]]:  # type: ignore[no-untyped-def]
    """``name -> (replication factor, effective min.insync.replicas)`` of existing topics."""
    from kafka.admin import ConfigResource, ConfigResourceType

    if not names:
        return {}
    deadline = time.monotonic() + 30
    while True:  # a topic just created may take a moment to reach every broker's metadata
        described = {t["name"]: t for t in admin.describe_topics(list(names))}
        missing = [n for n in names if n not in described or described[n]["error_code"] or
                   not described[n]["partitions"]]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    if missing:
        raise KafkaSetupError(f"topic(s) not found in the cluster's metadata: {', '.join(missing)}")
    factors = {name: min(len(p["replica_nodes"]) for p in described[name]["partitions"]) for name in names}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs={MIN_INSYNC: None}) for name in names]
    configs = admin.describe_configs(resources, config_filter="all")["topic"]
    return {name: (factors[name], int(configs[name][MIN_INSYNC]["value"])) for name in names}


def _refuse_under_replicated(states: dict[str, tuple[int, int]], replication: Replication) -> None:
    low = {name: rf for name, (rf, _) in states.items() if rf < replication.factor}
    if not low:
        return
    shown = ", ".join(f"{name} ({rf})" for name, rf in sorted(low.items()))
    raise ReplicationError(
        f"{len(low)} topic(s) have fewer replicas than the {replication.factor} required (kafka.replication_factor: "
        f"{replication.setting}, {replication.brokers} broker(s)): {shown}; add replicas with "
        f"kafka-reassign-partitions, or set kafka.replication_factor: {min(low.values())} to accept them")


def _create_missing(admin, specs: Sequence[TopicSpec], replication: Replication) -> list[str]:  # type: ignore[no-untyped-def]
    from kafka.admin import NewTopic
    from kafka.errors import InvalidReplicationFactorError, TopicAlreadyExistsError

    existing = set(admin.list_topics())
    wanted = [NewTopic(s.name, s.partitions, replication.factor,
                       topic_configs={**dict(s.configs), **replication.topic_configs()})
              for s in specs if s.name not in existing]
    if not wanted:
        return []
    try:
        admin.create_topics(wanted, timeout_ms=30_000)
    except TopicAlreadyExistsError:
        pass  # another process created them meanwhile; checked like any existing topic
    except InvalidReplicationFactorError:
        raise KafkaSetupError(f"cannot create {', '.join(t.name for t in wanted)} with {replication.factor} "
                              f"replicas: fewer brokers are up than the {replication.brokers} registered") from None
    return [t.name for t in wanted]


def _raise_min_insync(admin, names: Sequence[str], replication: Replication) -> None:  # type: ignore[no-untyped-def]
    """Set ``min.insync.replicas`` on existing topics, leaving their other settings as they are."""
    from kafka.admin import ConfigResource, ConfigResourceType

    if not names:
        return
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs=replication.topic_configs()) for name in names]
    results = admin.alter_configs(resources, incremental=True).get("topic", {})
    failed = {name: result for name, result in results.items() if result != "OK"}
    if failed:
        raise KafkaSetupError(f"cannot set {MIN_INSYNC}={replication.min_insync} on {', '.join(failed)}: "
                              f"{next(iter(failed.values()))}")
    log.warning("raised min.insync.replicas of existing topics", topics=list(names),
                min_insync_replicas=replication.min_insync)


def replicate_topics(bootstrap: str, specs: Sequence[TopicSpec], replication: Replication) -> TopicsReport:
    """Create the missing topics with ``replication``, then hold every topic of ``specs`` to it.

    An existing topic with fewer replicas than required is refused (:class:`ReplicationError`, one
    line): adding replicas moves data between brokers, an operator's decision.  One with a lower
    ``min.insync.replicas`` gets the required value (incremental alter configs, other settings kept).
    More replicas or a higher min.insync than required are left alone.
    """
    admin = _admin(bootstrap, "nonsite-topics")
    try:
        created = set(_create_missing(admin, specs, replication))
        names = [s.name for s in specs]
        states = describe_replication(admin, names)
        _refuse_under_replicated(states, replication)
        low_isr = [name for name in names if states[name][1] < replication.min_insync]
        _raise_min_insync(admin, low_isr, replication)
    finally:
        admin.close()
    topics = tuple(TopicReplication(name, states[name][0],
                                    replication.min_insync if name in low_isr else states[name][1],
                                    created=name in created, raised_min_insync=name in low_isr)
                   for name in names)
    return TopicsReport(replication, topics)
