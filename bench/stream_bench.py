"""Stream benchmark: raw aiokafka pass-through versus the nonsite worker, same broker, same input.

(a) raw: an aiokafka consumer reads the detections and an aiokafka producer writes one output per
    input (what Faust itself uses underneath), no processing;
(b) project: one ``nonsite worker`` (subprocess) runs intake + dedup + dispatch + disposal on the
    same detections and publishes incident snapshots (plus tasks, case events, alerts).  Repeats of
    an incident handled in one batch share a snapshot, so the worker is done when the latest snapshot
    of every incident counts all its detections (``Incident.detections``), not after N messages.

Both rates are measured the same way: inputs / (timestamp of the last output − timestamp of the
first output), so start-up and group joins are excluded from both.  The worker's first output comes
after its first batch, so its input count is reduced by a whole batch (``INTAKE_BATCH``), which can
only understate its rate.  (a) and (b) run in turns, ``--rounds`` times, each round on fresh topics
with the same detections, after one uncounted raw pass-through that warms up the broker
(``--warmup 0`` skips it); it prints every round, then the medians of both and their ratio.

    .venv/bin/python bench/stream_bench.py --detections 100000 --rounds 5
    (uses $NONSITE_KAFKA_BOOTSTRAP, or starts a local Kafka in a temp dir)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional

import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from nonsite.config import City, load_city  # noqa: E402
from nonsite.devtools.kafka_local import LocalKafka  # noqa: E402
from nonsite.kafka.admin import ensure_topics  # noqa: E402
from stream.runtime.intake_consumer import INTAKE_BATCH  # noqa: E402
from stream.runtime.topics import create_topics  # noqa: E402
from contract import Detection, Evidence, to_iso  # noqa: E402

VIOLATION_LENGTH = 10  # a start and nine updates per violation: 10% of detections are new violations


def bench_city(tmp: Path) -> City:
    folder = tmp / "configs"
    shutil.copytree(PROJECT / "configs", folder)
    system = yaml.safe_load((folder / "nonsite.yaml").read_text())
    tag = uuid.uuid4().hex[:8]
    system["kafka"]["topics"] = {k: f"bench{tag}.{k}" for k in system["kafka"]["topics"]}
    system["stream"].update(app_id=f"nonsite-bench-{tag}", data_dir=str(tmp / "worker"))
    (folder / "nonsite.yaml").write_text(yaml.safe_dump(system, allow_unicode=True))
    return load_city(folder)


def make_detections(city: City, count: int) -> list[Detection]:
    """Violations at every camera/zone, interleaved like several live cameras: start, then updates."""
    spots = [(c.id, z.id) for c in city.cameras for z in c.zones]
    scenarios = [s.id for s in city.scenarios]
    now = time.time()
    out = []
    violations = count // VIOLATION_LENGTH
    for step in range(VIOLATION_LENGTH):
        for v in range(violations):
            camera, zone = spots[v % len(spots)]
            scenario = scenarios[(v // len(spots)) % len(scenarios)]
            at = now + step * 5 + v * 0.001
            out.append(Detection(
                event_id=f"b{v}-{step}", kind="start" if step == 0 else "update",
                violation_id=f"{camera}/{v}/{scenario}",
                camera_id=camera, scenario=scenario, zone_id=zone, object_class="car", track_id=v,
                confidence=0.5 + step * 0.01, bbox=[0.1, 0.5, 0.3, 0.9], first_seen=to_iso(now), observed_at=to_iso(at),
                dwell_s=150.0, plate=f"川A{v:05d}",
                evidence=[Evidence(kind="annotated", sha256=f"{v:064x}", uri=f"file:///e/{v}.jpg")]))
    return out


def produce(bootstrap: str, topic: str, detections: list[Detection]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    for d in detections:
        producer.send(topic, key=d.camera_id.encode(), value=d.to_json())
    producer.flush(timeout=120)
    producer.close()


def output_span(bootstrap: str, topic: str, expected: int, timeout: float) -> tuple[int, float]:
    """Read ``topic`` until ``expected`` messages arrived; (count, last − first record timestamp in s)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             max_partition_fetch_bytes=8 * 1024 * 1024)
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    first, last, seen = None, None, 0
    deadline = time.monotonic() + timeout
    while seen < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500, max_records=50_000).values():
            for record in records:
                seen += 1
                first = record.timestamp if first is None else min(first, record.timestamp)
                last = record.timestamp if last is None else max(last, record.timestamp)
    consumer.close()
    if seen < expected:
        raise SystemExit(f"only {seen} of {expected} outputs on {topic} within {timeout:.0f}s")
    return seen, max((last - first) / 1000.0, 1e-3)


def merged_span(bootstrap: str, topic: str, detections: int, timeout: float) -> tuple[int, float]:
    """Read incident snapshots until the latest one per incident counts ``detections`` in all.

    Returns (snapshots read, last − first record timestamp in s)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             max_partition_fetch_bytes=8 * 1024 * 1024)
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    merged: dict[str, int] = {}  # incident id -> detections in its latest snapshot (one partition per id)
    first, last, seen = None, None, 0
    deadline = time.monotonic() + timeout
    while sum(merged.values()) < detections and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500, max_records=50_000).values():
            for record in records:
                seen += 1
                merged[record.key.decode()] = json.loads(record.value)["detections"]
                first = record.timestamp if first is None else min(first, record.timestamp)
                last = record.timestamp if last is None else max(last, record.timestamp)
    consumer.close()
    if sum(merged.values()) < detections:
        raise SystemExit(f"only {sum(merged.values())} of {detections} detections merged on {topic} "
                         f"within {timeout:.0f}s")
    return seen, max((last - first) / 1000.0, 1e-3)


async def raw_pass_through(bootstrap: str, source: str, sink: str, count: int) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=f"raw-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", enable_auto_commit=True, max_poll_records=500)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    try:
        done = 0
        while done < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batches.values():
                for record in records:
                    await producer.send(sink, key=record.key, value=record.value)
                    done += 1
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()


def run_worker(city: City, tmp: Path, expected: int, timeout: float,
               profile: Optional[str] = None) -> tuple[int, float]:
    env = dict(os.environ, NONSITE_KAFKA_BOOTSTRAP=city.kafka.bootstrap)
    log = open(tmp / "worker.log", "wb")
    command = [sys.executable, "-m", "nonsite.cli", "--config", str(city.root), "--log-level", "WARNING", "worker",
               "--web-port", str(_free_port()), "--data-dir", str(tmp / "worker")]
    if profile:  # py-spy (pip install py-spy) samples the worker; its collapsed stacks go to ``profile``
        command = ["py-spy", "record", "--gil", "--format", "raw", "--rate", "200", "--output", profile, "--"] + command
    worker = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        return merged_span(city.kafka.bootstrap, city.kafka.topics.incidents, expected, timeout)
    finally:
        stop_group(worker, signal.SIGINT if profile else signal.SIGTERM)  # py-spy writes its file on SIGINT


def stop_group(process: subprocess.Popen, first: int) -> None:
    """Stop the worker and whatever it started (py-spy's child): ``first``, then SIGTERM, then SIGKILL."""
    for sig in (first, signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            continue
        try:
            os.killpg(process.pid, 0)  # py-spy may be gone while its child still runs
        except ProcessLookupError:
            return


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_round(tmp: Path, bootstrap: str, detections_wanted: int, timeout: float) -> tuple[City, int, float]:
    """Fresh topics, the detections produced once, then (a) on them: (city, detections, raw span in s)."""
    city = bench_city(tmp)
    create_topics(city)
    detections = make_detections(city, detections_wanted)
    produce(bootstrap, city.kafka.topics.detections, detections)
    raw_sink = f"{city.kafka.topics.detections}.raw-out"
    ensure_topics(bootstrap, [raw_sink], city.kafka.partitions, 1)
    asyncio.run(raw_pass_through(bootstrap, city.kafka.topics.detections, raw_sink, len(detections)))
    _, raw_span = output_span(bootstrap, raw_sink, len(detections), timeout)
    return city, len(detections), raw_span


def one_round(tmp: Path, bootstrap: str, detections_wanted: int, args: argparse.Namespace) -> dict:
    """(a) then (b) on the same detections, in fresh topics; rates in inputs per second."""
    city, count, raw_span = raw_round(tmp, bootstrap, detections_wanted, args.timeout)
    snapshots, worker_span = run_worker(city, tmp, count, args.timeout, args.profile)
    counted = max(count - INTAKE_BATCH, 1)  # the first batch is done before the first output
    return {"count": count, "counted": counted, "raw_span": raw_span, "worker_span": worker_span,
            "raw": count / raw_span, "worker": counted / worker_span, "snapshots": snapshots,
            "cameras": len(city.cameras), "partitions": city.kafka.partitions}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5, help="(a) and (b) in turns; the medians are compared")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--warmup", type=int, choices=(0, 1), default=1,
                        help="1: one uncounted raw pass-through first, to warm up the broker")
    parser.add_argument("--profile", metavar="FILE", help="run the worker under py-spy, collapsed stacks to FILE")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nonsite-stream-bench-"))
    cluster = None
    bootstrap = os.environ.get("NONSITE_KAFKA_BOOTSTRAP")
    try:
        if not bootstrap:
            cluster = LocalKafka(tmp / "kafka", nodes=1, base_port=_free_port_pair())
            bootstrap = cluster.start()
            os.environ["NONSITE_KAFKA_BOOTSTRAP"] = bootstrap
        if args.warmup:
            # a fresh broker's JVM is still compiling its hot paths: the raw rate climbed from round to
            # round (51k, 62k, 92k msg/s) and flattered the ratio, so one raw pass is run uncounted
            raw_round(tmp / "warmup", bootstrap, args.detections, args.timeout)
        rounds = []
        for number in range(1, args.rounds + 1):
            r = one_round(tmp / f"round{number}", bootstrap, args.detections, args)
            rounds.append(r)
            print(f"round {number}: (a) {r['raw']:8.0f} msg/s ({r['count']} in {r['raw_span']:.2f} s)   "
                  f"(b) {r['worker']:8.0f} detections/s ({r['counted']} in {r['worker_span']:.2f} s, "
                  f"{r['snapshots']} incident snapshots)   {r['worker'] / r['raw']:6.1%}", flush=True)
        raw_rate = statistics.median(r["raw"] for r in rounds)
        worker_rate = statistics.median(r["worker"] for r in rounds)
        first = rounds[0]
        print(f"detections: {first['count']} ({first['count'] // VIOLATION_LENGTH} violations, {first['cameras']} "
              f"cameras, {first['partitions']} partitions), {len(rounds)} rounds, medians:")
        print(f"(a) raw aiokafka consume + produce 1:1 : {raw_rate:10.0f} msg/s")
        print(f"(b) nonsite worker dedup + dispatch    : {worker_rate:10.0f} detections/s")
        print(f"ratio (b)/(a)                          : {worker_rate / raw_rate:10.1%}")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other processes share the CPU)")
        print(f"goal: >= 5000 detections/s and >= 50% of raw -> "
              f"{'met' if worker_rate >= 5000 and worker_rate >= raw_rate / 2 else 'NOT met'}")
        return 0
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _free_port_pair() -> int:
    import socket
    for _ in range(100):
        base = _free_port()
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", base + 1))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port pair")


if __name__ == "__main__":
    sys.exit(main())
