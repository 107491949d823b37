"""Kafka administration: the project's topics, their settings and replication, and the brokers' answers.

Every process that creates or checks topics goes through here: ``nonsite kafka start|topics``, the demo
and the worker at its start (:func:`create_city_topics`), the tests.

* :class:`~nonsite.kafka.lifecycle.TopicSpec` is a topic the project needs, with its partitions and its
  lifecycle settings (:func:`nonsite.kafka.lifecycle.project_topics`, docs/topics.md);
* :class:`Replication` is what every topic must have, from ``kafka.replication_factor`` (``auto`` or a
  number) and the brokers of the cluster; ``min.insync.replicas`` follows (:func:`min_insync_for`);
* :func:`replicate_topics` creates the missing topics and holds the existing ones to both.

Example::

    >>> replication = replication_for("localhost:9092", "auto")                        # doctest: +SKIP
    >>> replicate_topics("localhost:9092", [TopicSpec("t", 4)], replication).created    # doctest: +SKIP
    ['t']
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence, Union

import structlog

from nonsite.config import City, ConfigError
from nonsite.errors import KafkaSetupError
from nonsite.kafka import clients
from nonsite.kafka.lifecycle import TopicSpec, project_topics
from nonsite.kafka.topic_settings import SettingChange, hold_to_specs

log = structlog.get_logger("nonsite.kafka")

AUTO = "auto"  # kafka.replication_factor: follow the cluster
AUTO_MAX_REPLICAS = 3  # ``auto`` replicates to min(3, brokers)
MIN_INSYNC = "min.insync.replicas"


def cluster_brokers(bootstrap: str, wait_s: float = 30.0) -> tuple[int, int]:
    """``(registered, live)``: the brokers the cluster knows, and those of them not fenced (up).

    Raises :class:`KafkaSetupError` (one line) when no broker at ``bootstrap`` answers within ``wait_s``.
    """
    from kafka.errors import KafkaError

    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)  # refused connections are expected while a broker starts
    try:
        admin = clients.admin(bootstrap, "nonsite-probe", request_timeout_ms=3000,
                              bootstrap_timeout_ms=int(wait_s * 1000))
        try:
            brokers = admin.describe_cluster()["brokers"]  # fenced (stopped) brokers included
        finally:
            admin.close()
    except KafkaError as exc:
        raise KafkaSetupError(f"Kafka at {bootstrap} does not answer: {exc}") from None
    finally:
        kafka_log.setLevel(level)
    return len(brokers), len([b for b in brokers if not b.get("is_fenced")])


def broker_count(bootstrap: str, wait_s: float = 30.0) -> int:
    """How many brokers are up (registered and not fenced), asked through ``bootstrap``."""
    return cluster_brokers(bootstrap, wait_s)[1]


def ensure_topics(bootstrap: str, topics: Iterable[str], partitions: int, replication_factor: int,
                  configs: Optional[dict[str, str]] = None) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = clients.admin(bootstrap, "nonsite-topics")
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
    changes: tuple[SettingChange, ...] = ()  # existing topics' settings brought to their specs

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
                "settings_changed": len(self.changes),
                "topics": {t.name: f"rf={t.replication_factor} min.insync={t.min_insync_replicas}"
                           for t in self.topics}}


def describe_replication(admin, names: Sequence[str]) -> dict[str, tuple[int, int]]:  # type: ignore[no-untyped-def]
    """``name -> (replication factor, effective min.insync.replicas)`` of existing topics."""
    from kafka.admin import ConfigResource, ConfigResourceType

    if not names:
        return {}
    deadline = time.monotonic() + 30

    def topics() -> dict:
        return {t["name"]: t for t in admin.describe_topics(list(names))}

    def unready(found: dict) -> list[str]:
        return [n for n in names if n not in found or found[n]["error_code"] or not found[n]["partitions"]]

    # a topic just created may take a moment to reach every broker's metadata
    described, missing = _until_complete(topics, unready, deadline)
    if missing:
        raise KafkaSetupError(f"topic(s) not found in the cluster's metadata: {', '.join(missing)}")
    factors = {name: min(len(p["replica_nodes"]) for p in described[name]["partitions"]) for name in names}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs={MIN_INSYNC: None}) for name in names]

    def settings() -> dict:
        return admin.describe_configs(resources, config_filter="all").get("topic", {})

    def unsettled(found: dict) -> list[str]:
        return [n for n in names if MIN_INSYNC not in found.get(n, {})]

    # and the broker asked for configs may not know it yet: its answer then holds none (kafka-python raises nothing)
    configs, missing = _until_complete(settings, unsettled, deadline)
    if missing:
        raise KafkaSetupError(f"no {MIN_INSYNC} in the cluster's answer for topic(s): {', '.join(missing)}")
    return {name: (factors[name], int(configs[name][MIN_INSYNC]["value"])) for name in names}


def _until_complete(fetch: Callable[[], dict], missing_of: Callable[[dict], list[str]],
                    deadline: float) -> tuple[dict, list[str]]:
    """Fetch again every 0.3 s until nothing is missing or the deadline passes: the answer and what it lacks."""
    while True:
        answer = fetch()
        missing = missing_of(answer)
        if not missing or time.monotonic() > deadline:
            return answer, missing
        time.sleep(0.3)


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


def replicate_topics(bootstrap: str, specs: Sequence[TopicSpec], replication: Replication,
                     shorten: bool = False) -> TopicsReport:
    """Create the missing topics with ``replication`` and their settings, then hold every topic of ``specs`` to both.

    An existing topic with fewer replicas than required is refused (:class:`ReplicationError`, one
    line): adding replicas moves data between brokers, an operator's decision.  One with a lower
    ``min.insync.replicas`` gets the required value (incremental alter configs, other settings kept).
    More replicas or a higher min.insync than required are left alone.  The settings a spec names
    (its lifecycle) are set as the spec says, one log line per change
    (:func:`~nonsite.kafka.topic_settings.hold_to_specs`); a refusal is one line naming the topic and setting,
    and so is a change that would shorten the life of a kept record unless ``shorten`` is True.
    """
    admin = clients.admin(bootstrap, "nonsite-topics", request_timeout_ms=30_000)
    try:
        created = set(_create_missing(admin, specs, replication))
        names = [s.name for s in specs]
        states = describe_replication(admin, names)
        _refuse_under_replicated(states, replication)
        low_isr = [name for name in names if states[name][1] < replication.min_insync]
        _raise_min_insync(admin, low_isr, replication)
        changes = hold_to_specs(admin, specs, shorten)
    finally:
        admin.close()
    topics = tuple(TopicReplication(name, states[name][0],
                                    replication.min_insync if name in low_isr else states[name][1],
                                    created=name in created, raised_min_insync=name in low_isr)
                   for name in names)
    return TopicsReport(replication, topics, tuple(changes))


# ---------------------------------------------------------------- the city's topics
def create_city_topics(city: City, bootstrap: str, shorten: bool = False) -> TopicsReport:
    """Create every topic of the project (:func:`~nonsite.kafka.lifecycle.project_topics`, the worker's
    internal ones included), replicated as ``kafka.replication_factor`` says for this cluster, with its lifecycle.

    Existing topics are checked: fewer replicas than required is refused with one line
    (:class:`ReplicationError`), a lower min.insync.replicas is raised, lifecycle settings are set
    (shortening a kept record's life only with ``shorten``: ``nonsite kafka topics --shorten-retention``).
    ``nonsite kafka start|topics``, the demo and the worker at its start all call this.
    """
    replication = replication_for(bootstrap, city.kafka.replication_factor)
    report = replicate_topics(bootstrap, project_topics(city), replication, shorten)
    log.info("kafka topics", bootstrap=bootstrap, **report.log_fields())
    return report
