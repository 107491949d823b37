"""``nonsite worker`` (the Faust worker, in-process), and reading one view of its state table.

:func:`read_table_view` reads the state table from its changelog topic in Kafka
(``<app_id>-case_state-changelog``: the latest value per key is the table), so it needs no worker web
port and sees every worker's partitions.  (The closure figures come from the system of record:
``nonsite report``, :mod:`web.cli`.)

Example::

    $ nonsite worker --web-port 6066 --data-dir var/worker
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Optional

import structlog

from nonsite.config import City
from nonsite.kafka import clients

log = structlog.get_logger("nonsite.stream")


def worker(args: argparse.Namespace, city: Optional[City]) -> int:
    from stream.runtime.app import build_app
    from stream.runtime.worker import StoppableWorker
    from stream.runtime.topics import create_topics

    assert city is not None
    created = create_topics(city)
    if created:
        log.info("created topics", topics=created)
    data_dir = Path(args.data_dir) if getattr(args, "data_dir", None) else city.resolve_path(city.stream.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(city, web_port=getattr(args, "web_port", None), data_dir=data_dir)
    level = (getattr(args, "log_level", None) or "info").lower()
    if level == "debug":  # nonsite.logs keeps Faust and Kafka clients at WARNING; show their INFO here
        import logging
        for name in ("faust", "mode", "aiokafka"):
            logging.getLogger(name).setLevel(logging.INFO)
    tune_garbage_collector()
    StoppableWorker(app, loglevel=level, redirect_stdouts=False).execute_from_commandline()
    return 0


GC_YOUNG_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Collect the young generation every 50,000 allocations instead of 700.

    A batch of inputs keeps thousands of fresh objects alive at once; with the default threshold the
    collector ran every few dozen inputs and re-scanned the survivors, about a third of the engine's
    time (measured on the engine alone).  The older generations are collected as before.  Objects
    made at start-up (config, code) are frozen out of every collection.
    """
    import gc

    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def read_table_view(city: City, view: str, timeout_s: float = 30.0) -> dict[str, dict]:
    """One view (key prefix) of the worker's state table: the latest value per key of its changelog.

    Tombstones and ``[None, …]`` values are deletions; a value is stored as [value, value before, input id].
    """
    from kafka import TopicPartition

    from stream.runtime.topics import STATE_TABLE, changelog_topic_name

    topic, prefix = changelog_topic_name(city, STATE_TABLE), f"{view}|"
    consumer = clients.reader(city.kafka.bootstrap, client_id="nonsite-report")
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return {}
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        rows: dict[str, dict] = {}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout_s:.0f}s")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    key = json.loads(record.key)
                    if not key.startswith(prefix):
                        continue
                    value = json.loads(record.value) if record.value is not None else None
                    if value is None or value[0] is None:
                        rows.pop(key[len(prefix):], None)
                    else:
                        rows[key[len(prefix):]] = value[0]
        return rows
    finally:
        consumer.close()
