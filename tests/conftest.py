"""Shared fixtures: a real local Apache Kafka per test session, the city config, the real model and media.

A missing broker is a failure, never a skip.  The model and media paths come from environment
variables (``NONSITE_WEIGHTS``, ``NONSITE_MEDIA``) that ``.ci/run`` and the Makefile set; under CI a
missing file fails, elsewhere the test skips and names the variable to set.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Iterator, NoReturn

import pytest
from kafka import KafkaConsumer, TopicPartition

from nonsite.config import City, load_city
from nonsite.devtools.kafka_local import PORT_STEP, LocalKafka
from nonsite.kafka.admin import ensure_topics

PROJECT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--screenshots", metavar="DIR", default=None,
                     help="write the page tests' screenshots to DIR instead of a temporary folder "
                          "(`make screenshots` regenerates the README's, in docs/screenshots)")


def free_port_block(span: int = 2) -> int:
    """A port P such that P..P+span-1 are free now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + span < 65535 and all(_free(base + i) for i in range(span)):
            return base
    raise RuntimeError("no free port block")


def free_cluster_base(nodes: int) -> int:
    """A base port whose broker and controller ports for every node of a local cluster are free."""
    for base in range(21092, 60000, 1000):
        ports = [base + i * PORT_STEP + j for i in range(nodes) for j in (0, 1)]
        if all(_free(p) for p in ports):
            return base
    raise RuntimeError("no free ports for a local cluster")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def required_file(variable: str, default_name: str | None = None) -> Path:
    """A file or folder named by an environment variable; fail in CI, skip with its name elsewhere."""
    value = os.environ.get(variable)
    path = Path(value) if value else None
    if path is not None and path.exists():
        return path
    fail_or_skip(f"set {variable} to {default_name or 'the file'} (see README 'Prerequisites'); got {value!r}")


def fail_or_skip(message: str) -> NoReturn:
    """Something the test needs is missing: a failure under CI, a skip naming the remedy elsewhere."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def reader_from_beginning(bootstrap: str, topic: str) -> KafkaConsumer:
    """A consumer assigned to every partition of ``topic``, at the beginning; the caller closes it."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             auto_offset_reset="earliest")
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [0])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    return consumer


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real single-node Kafka 4 (KRaft) for the whole session, or the one NONSITE_KAFKA_BOOTSTRAP names."""
    external = os.environ.get("NONSITE_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    cluster = LocalKafka(tmp_path_factory.mktemp("kafka"), nodes=1, base_port=free_port_block(2))
    bootstrap = cluster.start()
    os.environ["NONSITE_KAFKA_BOOTSTRAP"] = bootstrap
    try:
        yield bootstrap
    finally:
        os.environ.pop("NONSITE_KAFKA_BOOTSTRAP", None)
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server (Debian's package) for the session: the URL of an empty database."""
    from postgres_support import LocalPostgres, postgres_bin

    binaries = postgres_bin()
    if binaries is None:
        fail_or_skip("PostgreSQL is not installed: apt-get install postgresql (or set NONSITE_PG_BIN)")
    folder = Path(tempfile.mkdtemp(prefix="nonsite-pg-"))  # not under pytest's 0700 folder: the server's user reads it
    server = LocalPostgres(folder, free_port_block(1), binaries)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_setting(request) -> str:
    """What ``history.database`` would say in nonsite.yaml: an in-memory SQLite, or a new PostgreSQL database;
    a test using it runs on both."""
    if request.param == "sqlite":
        return ":memory:"
    return request.getfixturevalue("new_postgres_database")()


@pytest.fixture
def new_postgres_database(postgres_url: str):
    """``new_postgres_database() -> URL`` of a new empty database on the session's server."""
    import psycopg
    from sqlalchemy.engine import make_url

    def create() -> str:
        url = make_url(postgres_url)
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return url.set(database=name).render_as_string(hide_password=False)

    return create


@pytest.fixture
def topic_factory(kafka_bootstrap: str):
    """Create uniquely named topics: ``topic_factory("detections", partitions=4) -> name``."""

    def create(stem: str, partitions: int = 1, replication: int = 1, configs: dict | None = None) -> str:
        name = f"test.{stem}.{uuid.uuid4().hex[:10]}"
        ensure_topics(kafka_bootstrap, [name], partitions, replication, configs)
        return name

    return create


@pytest.fixture(scope="session")
def city() -> City:
    return load_city(PROJECT / "configs")


@pytest.fixture(scope="session")
def weights_path() -> Path:
    return required_file("NONSITE_WEIGHTS", "the detector weights, e.g. ../shared/models/yolov8n_int8.tflite")


@pytest.fixture(scope="session")
def media_dir() -> Path:
    return required_file("NONSITE_MEDIA", "the folder of real test photos, e.g. ../shared/media")


# ------------------------------------------------------------------ the page tests: one real headless Chromium
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    from web_harness import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (the page tests need the real browser)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(request: pytest.FixtureRequest, tmp_path_factory) -> Path:
    """Where the screenshots go: a temporary folder, or the one ``--screenshots`` names (``make screenshots``
    passes docs/screenshots, the README's; a plain test run never writes there)."""
    chosen = request.config.getoption("screenshots")
    return Path(request.config.invocation_params.dir, chosen).resolve() if chosen else tmp_path_factory.mktemp("shots")
