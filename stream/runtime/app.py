"""The Faust app, built from the city config: broker, store, partitions, replication, static membership.

Its topics are created beforehand (:mod:`stream.runtime.topics`); its agents and timers are
:mod:`stream.runtime.agents`.

Example::

    >>> from nonsite.config import load_city
    >>> app = build_app(load_city("configs"))      # doctest: +SKIP
    >>> app.main()                                 # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Callable, Optional

import faust

from nonsite.config import City
from nonsite.kafka.admin import replication_for
from stream.runtime.agents import register
from stream.runtime.faust_fixes import shorten_fetch_wait

def build_app(city: City, *, clock: Callable[[], float] = time.time, web_port: Optional[int] = None,
              data_dir: Optional[Path] = None, web_enabled: bool = True) -> faust.App:
    """A configured app with its agents, tables, timers and metrics registered (see :mod:`stream.runtime.agents`)."""
    settings = city.stream
    datadir = Path(data_dir or city.resolve_path(settings.data_dir)).resolve()
    port = web_port or settings.web_port
    # static membership (KIP-345): a worker restarted with the same data dir and web port rejoins at once
    # instead of waiting for its dead predecessor's session to time out.  The port is part of the id
    # because the group keeps the member's old assignment, and Faust checks it names this worker's URL.
    instance_id = f"{settings.app_id}-{hashlib.sha1(f'{datadir}:{port}'.encode()).hexdigest()[:10]}"
    brokers = [f"kafka://{server.strip()}" for server in city.kafka.bootstrap.split(",")]
    # for a topic Faust would create itself; prepare_topics() creates them all beforehand
    replication = replication_for(city.kafka.bootstrap, city.kafka.replication_factor)
    app = faust.App(
        settings.app_id,
        broker=brokers,
        store=settings.store,
        topic_partitions=city.kafka.partitions,
        topic_replication_factor=replication.factor,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.session_timeout_s,  # static members never leave: a dead one is waited for
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 5),
        broker_max_poll_records=500,
        consumer_max_fetch_size=16 * 1024 * 1024,  # per partition: many 768 KB cases messages per fetch, not one
        web_enabled=web_enabled,
        web_port=port,
        web_host="localhost",
        datadir=str(datadir),
        consumer_group_instance_id=instance_id,
        table_cleanup_interval=3600.0,
        producer_acks=-1,
        producer_linger=0.005,  # a few ms of batching: far fewer produce requests per message
        producer_max_batch_size=512 * 1024,
        autodiscover=False,
        key_serializer="json",  # tables: JSON keys and values in the changelogs (read by `nonsite report`)
        value_serializer="json",
    )
    shorten_fetch_wait()
    register(app, city, clock, instance=instance_id)
    return app
