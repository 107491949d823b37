"""The system of record under a year of history: replay, start-up, a one-year report, memory.

The input is a year of cases as the worker publishes them: per case one final incident snapshot, one
task and ``--events-per-case`` case events (the default, 100,000 cases × 10, is 1,000,000 case
events), filed over the 365 days before today.

1. **Replay.** The events are produced to a fresh set of topics, then recorded into a new database by
   the web app's own consumer (``web.bus.Bus.catch_up``, the code ``nonsite report`` and the web app
   run): decoding, one transaction per poll, the counted facts of every touched case, the positions.
2. **Start.** ``nonsite web`` (a subprocess) is started on that database: the time from the spawn to
   its first ``/api/health`` answer of 200 (consuming, resumed at the stored positions), and its RSS.
3. **Report.** A supervisor asks for the summary of the whole year (by scenario and by grid) and the
   daily figures: median and slowest of ``--repeats`` requests each.
4. **Baseline** (``--baseline-tree DIR``, a checkout of the code before the database, e.g. d131680):
   the same start and report against the same topics with that code, whose web app rebuilt an
   in-memory read model from the earliest offsets on every start; the ratios are printed.

    .venv/bin/python bench/history_bench.py                       # SQLite under a temp dir
    .venv/bin/python bench/history_bench.py --database postgresql+psycopg://postgres@127.0.0.1:5432/bench
    .venv/bin/python bench/history_bench.py --baseline-tree /tmp/wt-old
    (uses $NONSITE_KAFKA_BOOTSTRAP, or starts a local Kafka in a temp dir)
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, Optional

import httpx
import psutil
import yaml
from kafka import KafkaProducer

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT), str(PROJECT / "bench")]

from contract import CaseEvent, Incident, Task, to_iso  # noqa: E402
from nonsite.config import City, load_city  # noqa: E402
from nonsite.devtools.kafka_local import LocalKafka  # noqa: E402
from stream.runtime.topics import create_topics  # noqa: E402
from stream_bench import _free_port, _free_port_pair  # noqa: E402  (the same free ports as the stream bench)

STEPS = [("accept", "DISPATCHED", "ACCEPTED"), ("arrive", "ACCEPTED", "ARRIVED"), ("resolve", "ARRIVED", "RESOLVED"),
         ("verify", "RESOLVED", "VERIFIED"), ("close", "VERIFIED", "CLOSED")]
SUPERVISOR = ("sup", "sup-demo")


def bench_configs(tmp: Path, database: str, tree: Path = PROJECT) -> Path:
    """A copy of ``tree``'s configs on the bench's topics (and ``database``, when the tree has a history block)."""
    folder = tmp / ("configs" if tree == PROJECT else "configs-baseline")
    shutil.copytree(tree / "configs", folder)
    system = yaml.safe_load((folder / "nonsite.yaml").read_text())
    system["kafka"]["topics"] = {k: f"bench{tmp.name[-8:]}.{k}" for k in system["kafka"]["topics"]}
    if "history" in system:
        system["history"] = {"database": database}
    (folder / "nonsite.yaml").write_text(yaml.safe_dump(system, allow_unicode=True))
    return folder


# ------------------------------------------------------------------ a year of cases
def year_of_cases(city: City, cases: int, events_per_case: int, today: date) -> Iterator[tuple[str, object]]:
    """(topic kind, record) of every case: its events, its task, its final snapshot."""
    scenarios = [s.id for s in city.scenarios]
    cameras = city.cameras
    officers = city.officers
    start = datetime.combine(today - timedelta(days=365), datetime.min.time(), tzinfo=timezone.utc)
    spacing = timedelta(days=365) / cases
    for number in range(cases):
        camera, officer = cameras[number % len(cameras)], officers[number % len(officers)]
        filed = start + spacing * number
        incident_id, task_id = uuid.uuid4().hex, uuid.uuid4().hex
        closed = number % 10 != 0  # one case in ten is still open at the end of the year
        task = Task(task_id=task_id, incident_id=incident_id, officer_id=officer.id, grid_id=camera.grid,
                    scenario=scenarios[number % len(scenarios)], assigned_at=to_iso(filed + timedelta(minutes=1)),
                    accept_by=to_iso(filed + timedelta(minutes=16)), deadline=to_iso(filed + timedelta(hours=2)),
                    status="done" if closed else "accepted")
        last = filed
        for seq in range(events_per_case):
            action, before, after = STEPS[seq % len(STEPS)] if closed or seq % len(STEPS) < 2 else STEPS[1]
            last = filed + timedelta(minutes=5 + 9 * seq + number % 7)
            yield "case_events", CaseEvent(
                event_id=uuid.uuid4().hex, incident_id=incident_id, seq=seq + 1, at=to_iso(last), actor=officer.id,
                action=action, from_state=before, to_state=after, task_id=task_id, officer_id=officer.id,
                source=f"bench/{number}/{seq}")
        yield "tasks", task
        yield "incidents", Incident(
            incident_id=incident_id, camera_id=camera.id, scenario=task.scenario, zone_id="", grid_id=camera.grid,
            state="CLOSED" if closed else "ARRIVED", first_seen=to_iso(filed), last_seen=to_iso(filed),
            updated_at=to_iso(last), officer_id=officer.id, task_id=task_id, deadline=task.deadline)


def produce(city: City, records: Iterator[tuple[str, object]]) -> dict[str, int]:
    producer = KafkaProducer(bootstrap_servers=city.kafka.bootstrap, acks=1, linger_ms=20, batch_size=256_000,
                             compression_type=None)
    counts: dict[str, int] = {}
    for kind, record in records:
        key = record.incident_id.encode()  # type: ignore[attr-defined]
        producer.send(getattr(city.kafka.topics, kind), record.to_json(), key=key)  # type: ignore[attr-defined]
        counts[kind] = counts.get(kind, 0) + 1
    producer.flush()
    producer.close()
    return counts


def replay(city: City) -> tuple[int, float]:
    """Record everything the topics hold with the web app's consumer: (records, seconds)."""
    from history.database import open_database
    from history.queries import CaseStore
    from web.app import history_writer
    from web.bus import Bus

    store = CaseStore(open_database(city.system.history.database, city.root.parent))
    bus = Bus(city, store, history_writer(city, store))
    began = time.perf_counter()
    read = asyncio.run(bus.catch_up())
    seconds = time.perf_counter() - began
    store.engine.dispose()
    return read, seconds


# ------------------------------------------------------------------ the web app, started and asked
def start_web(configs: Path, tree: Path, log: Path, expected_records: Optional[int]
              ) -> tuple[subprocess.Popen, float, str]:
    """``nonsite web`` of ``tree`` on the ``configs`` folder: (process, seconds until it serves, base URL).

    With ``expected_records`` (the baseline, which rebuilds its model), it serves once its health says it
    has read that many records; else at the first healthy answer."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(tree))  # NONSITE_KAFKA_BOOTSTRAP: the bench's broker
    command = [sys.executable, "-m", "nonsite.cli", "--config", str(configs), "--log-level", "WARNING", "web",
               "--port", str(port)]
    began = time.perf_counter()
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the web app of {tree} exited ({process.returncode}); see {log}")
        try:
            health = httpx.get(f"{base}/api/health", timeout=2)
            if health.status_code == 200 and (expected_records is None or
                                              health.json().get("records", 0) >= expected_records):
                return process, time.perf_counter() - began, base
        except httpx.HTTPError:
            pass
        time.sleep(0.05)


def timed_reports(base: str, first: date, last: date, repeats: int) -> dict[str, list[float]]:
    client = httpx.Client(base_url=base, timeout=120)
    token = client.post("/api/login", json=dict(zip(("username", "password"), SUPERVISOR))).json()["token"]
    client.headers["Authorization"] = f"Bearer {token}"
    span = {"from": first.isoformat(), "to": last.isoformat()}
    asks = {"summary by scenario": ("/api/reports/summary", {**span, "by": "scenario"}),
            "summary by grid": ("/api/reports/summary", {**span, "by": "grid"}),
            "daily figures": ("/api/reports/daily", span)}
    times: dict[str, list[float]] = {name: [] for name in asks}
    totals = set()
    for _ in range(repeats):
        for name, (path, params) in asks.items():
            began = time.perf_counter()
            answer = client.get(path, params=params)
            times[name].append(time.perf_counter() - began)
            answer.raise_for_status()
            if name == "summary by scenario":
                totals.add(answer.json()["total"]["filed"])
    client.close()
    times["filed"] = sorted(totals)  # type: ignore[assignment]
    return times


def rss_mb(process: subprocess.Popen) -> float:
    return psutil.Process(process.pid).memory_info().rss / 2**20


def measure_web(configs: Path, tree: Path, log: Path, expected: Optional[int], first: date, last: date,
                repeats: int) -> dict:
    process, start_s, base = start_web(configs, tree, log, expected)
    try:
        rss_started = rss_mb(process)
        reports = timed_reports(base, first, last, repeats)
        return {"start_s": start_s, "rss_started": rss_started, "rss_after": rss_mb(process), "reports": reports}
    finally:
        process.terminate()
        process.wait(30)


def print_web(name: str, result: dict) -> None:
    print(f"{name}: serving {result['start_s']:.2f} s after the spawn; RSS {result['rss_started']:.0f} MB "
          f"started, {result['rss_after']:.0f} MB after the reports; the year's total filed: "
          f"{result['reports']['filed']}")
    for ask, seconds in result["reports"].items():
        if ask != "filed":
            median, slowest = statistics.median(seconds) * 1000, max(seconds) * 1000
            print(f"  {ask:<20} median {median:7.0f} ms, slowest {slowest:7.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--events-per-case", type=int, default=10)
    parser.add_argument("--database", default=None, help="a SQLAlchemy URL (default: a SQLite file in the temp dir)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="a checkout of the code before the database (its web app rebuilds from Kafka)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nonsite-history-bench-"))
    cluster = None
    try:
        if not os.environ.get("NONSITE_KAFKA_BOOTSTRAP"):
            cluster = LocalKafka(tmp / "kafka", nodes=1, base_port=_free_port_pair())
            os.environ["NONSITE_KAFKA_BOOTSTRAP"] = cluster.start()
        configs = bench_configs(tmp, args.database or str(tmp / "history.sqlite"))
        city = load_city(configs)
        create_topics(city)
        today = datetime.now(timezone.utc).date()
        began = time.perf_counter()
        counts = produce(city, year_of_cases(city, args.cases, args.events_per_case, today))
        total = sum(counts.values())
        print(f"input: {counts} = {total} records, produced in {time.perf_counter() - began:.0f} s")
        read, seconds = replay(city)
        print(f"replay into {_kind(city)}: {read} records in {seconds:.1f} s = {read / seconds:.0f} records/s "
              f"({counts['case_events'] / seconds:.0f} case events/s)")
        first, last = today - timedelta(days=365), today
        project = measure_web(configs, PROJECT, tmp / "web.log", None, first, last, args.repeats)
        print_web("nonsite web on the database", project)
        if args.baseline_tree:
            old = args.baseline_tree.resolve()
            baseline = measure_web(bench_configs(tmp, "", tree=old), old, tmp / "web-baseline.log", total, first,
                                   last, args.repeats)
            print_web(f"baseline web ({args.baseline_tree}) rebuilding from Kafka", baseline)
            _ratios(project, baseline)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        return 0
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _ratios(project: dict, baseline: dict) -> None:
    print(f"start: baseline / database = {baseline['start_s'] / project['start_s']:.1f}x; "
          f"RSS after the reports: {baseline['rss_after']:.0f} MB / {project['rss_after']:.0f} MB")
    for ask in project["reports"]:
        if ask != "filed":
            old, new = statistics.median(baseline["reports"][ask]), statistics.median(project["reports"][ask])
            print(f"  {ask:<20} baseline / database = {old / new:.1f}x")


def _kind(city: City) -> str:
    setting = city.system.history.database
    return "PostgreSQL" if setting.startswith("postgresql") else "SQLite"


if __name__ == "__main__":
    sys.exit(main())
