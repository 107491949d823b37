"""Every topic has its lifecycle (cleanup policy, retention) from one policy, set when it is created and
checked at every start, against the session's real Kafka (docs/topics.md).

The expected settings are written out here, not derived from the policy's code, so a change to the
policy must change this table too.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from nonsite.config import City, ConfigError, load_city
from nonsite.kafka.lifecycle import TopicSpec, project_topics
from nonsite.kafka.topic_settings import SettingChange, TopicSettingError, hold_to_specs
from stream.runtime.topics import changelog_topic_name, leader_topic_name
from stream_support import WorkerProcess, make_city

PROJECT = Path(__file__).resolve().parents[2]
DAY = 86_400_000
TEN_LEGAL_YEARS = str(10 * 366 * DAY)  # 316224000000
SETTINGS = ("cleanup.policy", "retention.ms", "retention.bytes", "segment.ms")
# kind -> (cleanup.policy, retention.ms, segment.ms or None) with the shipped kafka.retention
DEFAULT_POLICY = {
    "case_events": ("delete", "-1", None),
    "feedback": ("delete", "-1", None),
    "tasks": ("delete", "-1", None),
    "incidents": ("compact", "-1", None),
    "camera_status": ("compact", "-1", str(DAY)),
    "cameras": ("compact", "-1", str(DAY)),
    "detections": ("delete", str(7 * DAY), None),
    "alerts": ("delete", str(30 * DAY), None),
    "dead_letter": ("delete", str(90 * DAY), None),
    "cases": ("delete", str(7 * DAY), None),
    "changelog": ("compact", "-1", None),
    "leader": ("delete", str(7 * DAY), None),
}
LEGAL_KINDS = ("case_events", "feedback", "tasks", "incidents")


def city_folder(tmp: Path, **retention: object) -> Path:
    """A copy of configs/ with its own topic names and app id, one partition, and ``kafka.retention``."""
    folder = tmp / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("cameras.yaml", "scenarios.yaml", "grids.yaml"):
        shutil.copy(PROJECT / "configs" / name, folder / name)
    system = yaml.safe_load((PROJECT / "configs" / "nonsite.yaml").read_text(encoding="utf-8"))
    tag = uuid.uuid4().hex[:8]
    system["kafka"]["topics"] = {kind: f"life{tag}.{kind.replace('_', '-')}" for kind in system["kafka"]["topics"]}
    system["kafka"]["partitions"] = 1
    system["kafka"]["retention"] = retention
    system["stream"]["app_id"] = f"life-{tag}"
    (folder / "nonsite.yaml").write_text(yaml.safe_dump(system, allow_unicode=True), encoding="utf-8")
    return folder


def retarget(folder: Path, **retention: object) -> None:
    """Change ``kafka.retention`` of a folder made by :func:`city_folder`, keeping its topic names."""
    path = folder / "nonsite.yaml"
    system = yaml.safe_load(path.read_text(encoding="utf-8"))
    system["kafka"]["retention"] = retention
    path.write_text(yaml.safe_dump(system, allow_unicode=True), encoding="utf-8")


def nonsite(folder: Path, bootstrap: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NONSITE_KAFKA_BOOTSTRAP=bootstrap)
    return subprocess.run([sys.executable, "-m", "nonsite.cli", "--config", str(folder), "kafka", *args],
                          capture_output=True, text=True, timeout=180, env=env, cwd=PROJECT)


def topics_by_kind(city: City) -> dict[str, str]:
    return {spec.kind: spec.name for spec in project_topics(city)}


def described(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    """``topic -> {setting: effective value}`` for :data:`SETTINGS`, as the broker reports them."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs={s: None for s in SETTINGS})
                     for name in names]
        found = admin.describe_configs(resources, config_filter="all")["topic"]
    finally:
        admin.close()
    return {name: {s: found[name][s]["value"] for s in SETTINGS} for name in names}


def set_config(bootstrap: str, topic: str, **settings: object) -> None:
    """Incremental alter configs; a value of None deletes the topic's own setting (the broker default returns).

    Returns once the broker describes the topic so: a KRaft broker applies the change a moment later.
    """
    configs = {key.replace("_", "."): ("DELETE", None) if value is None else value for key, value in settings.items()}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)],
                                     incremental=True)
        assert result["topic"][topic] == "OK", result
        deadline = time.monotonic() + 30
        while True:
            found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict.fromkeys(
                configs))], config_filter="all")["topic"][topic]
            own = {key: found[key]["value"] if found[key]["config_source"] == "DYNAMIC_TOPIC_CONFIG" else None
                   for key in configs}
            if own == {key.replace("_", "."): value for key, value in settings.items()}:
                return
            assert time.monotonic() < deadline, f"{topic}: {own}"
            time.sleep(0.2)
    finally:
        admin.close()


# ---------------------------------------------------------------- the policy, without Kafka
def test_every_topic_of_the_project_has_its_lifecycle(city: City):
    specs = project_topics(city)
    assert {s.kind for s in specs} == set(DEFAULT_POLICY)
    assert {s.name for s in specs} >= set(city.kafka.topics.all().values())
    assert {s.name: s.partitions for s in specs}[leader_topic_name(city)] == 1
    assert {s.name: s.partitions for s in specs}[city.kafka.topics.cameras] == city.detector.sharing.shards
    for spec in specs:
        policy, retention, segment = DEFAULT_POLICY[spec.kind]
        wanted = {"cleanup.policy": policy, "retention.ms": retention, "retention.bytes": "-1"}
        assert dict(spec.configs) == wanted | ({"segment.ms": segment} if segment else {}), spec.kind


def test_a_legal_period_replaces_forever_on_the_kept_records_only(tmp_path: Path):
    kept = load_city(city_folder(tmp_path, legal_years=10))
    by_kind = {s.kind: s.configs for s in project_topics(kept)}
    for kind in LEGAL_KINDS:
        assert by_kind[kind]["retention.ms"] == TEN_LEGAL_YEARS
    assert by_kind["incidents"]["cleanup.policy"] == "compact,delete"
    assert by_kind["changelog"] == {"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1"}
    assert by_kind["detections"]["retention.ms"] == str(7 * DAY)


@pytest.mark.parametrize("kind, setting, was, now, shortens", [
    ("case_events", "retention.ms", "-1", TEN_LEGAL_YEARS, True),
    ("case_events", "retention.ms", TEN_LEGAL_YEARS, str(5 * 366 * DAY), True),
    ("case_events", "retention.ms", str(7 * DAY), "-1", False),  # a broker default made longer
    ("case_events", "retention.ms", str(5 * 366 * DAY), TEN_LEGAL_YEARS, False),
    ("incidents", "cleanup.policy", "compact", "compact,delete", True),
    ("incidents", "cleanup.policy", "delete", "compact", False),
    ("changelog", "cleanup.policy", "compact", "delete", True),
    ("detections", "retention.ms", str(30 * DAY), str(7 * DAY), False),  # not a kept record
])
def test_shortening_the_life_of_a_kept_record_is_recognised(kind, setting, was, now, shortens):
    assert SettingChange("t", kind, setting, was, now).shortens_a_kept_record is shortens


@pytest.mark.parametrize("retention, message", [
    ({"legal_years": 0}, "kafka.retention.legal_years: must be a whole number of years from 1 to 100, or null to "
                         "keep forever; got 0"),
    ({"legal_years": "forever"}, "kafka.retention.legal_years: must be a whole number of years from 1 to 100, or "
                                 "null to keep forever; got 'forever'"),
    ({"legal_years": 7.5}, "kafka.retention.legal_years: must be a whole number of years from 1 to 100, or null to "
                           "keep forever; got 7.5"),
    ({"detections_days": 0}, "kafka.retention.detections_days: must be a whole number of days from 1 to 36500; "
                             "got 0"),
    ({"dead_letter_days": True}, "kafka.retention.dead_letter_days: must be a whole number of days from 1 to 36500; "
                                 "got True"),
    ({"audit_days": 3}, "kafka.retention.audit_days: unknown field"),
])
def test_a_wrong_retention_setting_is_one_line(tmp_path: Path, retention: dict, message: str):
    folder = city_folder(tmp_path, **retention)
    with pytest.raises(ConfigError) as caught:
        load_city(folder)
    assert str(caught.value) == f"{folder}/nonsite.yaml: {message}"


def test_the_cli_names_a_wrong_retention_setting_in_one_line_and_exits_2(tmp_path: Path):
    folder = city_folder(tmp_path, alerts_days=-3)
    result = nonsite(folder, "localhost:1", "topics", "--check")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"nonsite: config error: {folder}/nonsite.yaml: kafka.retention.alerts_days: must be a whole number of "
        f"days from 1 to 36500; got -3"]


# ---------------------------------------------------------------- against the real broker
@pytest.mark.kafka
def test_topics_are_created_with_the_policy_and_the_check_passes(kafka_bootstrap: str, tmp_path: Path):
    folder = city_folder(tmp_path)
    city = load_city(folder)
    names = topics_by_kind(city)

    before = nonsite(folder, kafka_bootstrap, "topics", "--check")
    assert before.returncode == 3, before.stderr
    assert json.loads(before.stdout.splitlines()[-1])["differing"] == list(names.values())  # all missing

    created = nonsite(folder, kafka_bootstrap, "topics")
    assert created.returncode == 0, created.stderr
    summary = json.loads(created.stdout.splitlines()[-1])
    assert summary["topics_created"] == list(names.values()) and summary["settings_changed"] == []

    actual = described(kafka_bootstrap, list(names.values()))
    for kind, name in names.items():
        policy, retention, segment = DEFAULT_POLICY[kind]
        assert actual[name]["cleanup.policy"] == policy, name
        assert actual[name]["retention.ms"] == retention, name
        assert actual[name]["retention.bytes"] == "-1", name
        if segment:
            assert actual[name]["segment.ms"] == segment, name

    after = nonsite(folder, kafka_bootstrap, "topics", "--check")
    assert after.returncode == 0, after.stdout + after.stderr
    lines = [json.loads(line) for line in after.stdout.splitlines()]
    assert [line["topic"] for line in lines[:-1]] == list(names.values())
    assert lines[-1] == {"bootstrap": kafka_bootstrap, "checked": 12, "differing": []}


@pytest.mark.kafka
def test_the_check_exits_non_zero_when_a_setting_differs(kafka_bootstrap: str, tmp_path: Path):
    folder = city_folder(tmp_path)
    names = topics_by_kind(load_city(folder))
    assert nonsite(folder, kafka_bootstrap, "topics").returncode == 0
    set_config(kafka_bootstrap, names["dead_letter"], retention_ms=str(DAY))

    check = nonsite(folder, kafka_bootstrap, "topics", "--check")
    assert check.returncode == 3, check.stderr
    lines = {line.get("topic"): line for line in map(json.loads, check.stdout.splitlines())}
    assert lines[names["dead_letter"]]["differs"] == ["retention.ms"]
    assert lines[names["dead_letter"]]["settings"]["retention.ms"] == {"actual": str(DAY), "wanted": str(90 * DAY)}
    assert [n for n, line in lines.items() if n and line["differs"]] == [names["dead_letter"]]
    assert lines[None]["differing"] == [names["dead_letter"]]
    assert described(kafka_bootstrap, [names["dead_letter"]])[names["dead_letter"]]["retention.ms"] == str(DAY)


@pytest.mark.kafka
@pytest.mark.slow
def test_topics_left_at_the_broker_defaults_are_corrected_when_the_worker_starts(kafka_bootstrap: str,
                                                                               tmp_path: Path):
    city = make_city(tmp_path, ["G1"])
    events, incidents = city.kafka.topics.case_events, city.kafka.topics.incidents
    changelog = changelog_topic_name(city, "case_state")
    for topic in (events, incidents, changelog):  # as an older release left them: no settings of their own
        set_config(kafka_bootstrap, topic, cleanup_policy=None, retention_ms=None)
    defaults = described(kafka_bootstrap, [events])[events]
    assert defaults["cleanup.policy"] == "delete" and defaults["retention.ms"] != "-1"  # the broker's: 7 days

    worker = WorkerProcess(city, tmp_path).start()
    try:
        deadline = time.monotonic() + 120
        while "kafka topics" not in worker.log_path.read_text(errors="replace"):
            assert worker.process.poll() is None, worker.log_tail()
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.3)
        log = worker.log_path.read_text(errors="replace")
    finally:
        worker.stop()
    changed = re.findall(r"kafka topic setting changed\s+kind=(\S+) now=(\S+) setting=(\S+) topic=(\S+) was=(\S+)",
                         log)
    assert sorted(changed) == sorted([
        ("case_events", "-1", "retention.ms", events, defaults["retention.ms"]),
        ("incidents", "compact", "cleanup.policy", incidents, "delete"),
        ("incidents", "-1", "retention.ms", incidents, defaults["retention.ms"]),
        ("changelog", "compact", "cleanup.policy", changelog, "delete"),
        ("changelog", "-1", "retention.ms", changelog, defaults["retention.ms"]),
    ])
    actual = described(kafka_bootstrap, [events, incidents, changelog])
    assert actual[events]["retention.ms"] == "-1"
    assert (actual[incidents]["cleanup.policy"], actual[changelog]["cleanup.policy"]) == ("compact", "compact")


@pytest.mark.kafka
def test_a_setting_the_broker_refuses_stops_with_one_line_naming_topic_and_setting(kafka_bootstrap: str):
    topic = f"life.refused.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"retention.ms": str(7 * DAY)})], timeout_ms=30_000)
        with pytest.raises(TopicSettingError) as caught:
            hold_to_specs(admin, [TopicSpec(topic, 1, {"retention.ms": "-5"}, "dead_letter")])
    finally:
        admin.close()
    assert str(caught.value) == (
        f"cannot set retention.ms=-5 on topic {topic} (it has {7 * DAY}): [Error 40] InvalidConfigurationError: "
        f"Invalid value -5 for configuration retention.ms: Value must be at least -1")


@pytest.mark.kafka
def test_a_shorter_legal_period_is_refused_at_start_and_applied_only_when_asked(kafka_bootstrap: str, tmp_path: Path):
    folder = city_folder(tmp_path)
    names = topics_by_kind(load_city(folder))
    assert nonsite(folder, kafka_bootstrap, "topics").returncode == 0

    retarget(folder, legal_years=10)
    refused = nonsite(folder, kafka_bootstrap, "topics")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"nonsite: refusing to shorten the life of topic {names['incidents']} (incidents): cleanup.policy compact -> "
        f"compact,delete would let Kafka delete records kept for the legal period (and 4 more such change(s)); if "
        f"kafka.retention is what you mean, apply it once with `nonsite kafka topics --shorten-retention`")
    legal = [names[kind] for kind in LEGAL_KINDS]
    assert {name: s["retention.ms"] for name, s in described(kafka_bootstrap, legal).items()} == dict.fromkeys(
        legal, "-1")  # nothing was changed

    applied = nonsite(folder, kafka_bootstrap, "topics", "--shorten-retention")
    assert applied.returncode == 0, applied.stderr
    assert len(json.loads(applied.stdout.splitlines()[-1])["settings_changed"]) == 5
    actual = described(kafka_bootstrap, legal)
    assert {name: s["retention.ms"] for name, s in actual.items()} == dict.fromkeys(legal, TEN_LEGAL_YEARS)
    assert actual[names["incidents"]]["cleanup.policy"] == "compact,delete"
    assert nonsite(folder, kafka_bootstrap, "topics", "--check").returncode == 0


def test_the_policy_module_examples_hold():
    import doctest

    import nonsite.kafka.lifecycle

    result = doctest.testmod(nonsite.kafka.lifecycle)
    assert result.attempted == 4 and result.failed == 0  # the import and three examples
