"""``nonsite demo`` (what ``make demo`` runs): the whole loop on the sample city, on this machine.

1. a local Apache Kafka (or ``NONSITE_KAFKA_BOOTSTRAP``) with the city's topics;
2. sample camera videos built from real photos (``NONSITE_MEDIA``; without it, the photos that
   ship inside ultralytics) into ``.cache/demo``, written while the rest starts;
3. the stream worker and the web app as background processes (logs in ``var/demo/``);
4. the detector over every sample video (as many at once as there are cores), publishing to Kafka with "now" as
   the video's start;
5. a summary of the incidents and dispatched tasks, and where to look.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Optional

import structlog

from nonsite.config import City
from nonsite.devtools.kafka_local import DEFAULT_DATA_DIR, LocalKafka, port_open
from nonsite.errors import CommandError
from nonsite.kafka import clients
from nonsite.kafka.admin import create_city_topics
from nonsite.paths import CACHE, VAR

log = structlog.get_logger("nonsite.demo")


def media_folder() -> tuple[Path, bool]:
    """The photo folder and whether it is the full set (False: ultralytics' own two photos)."""
    named = os.environ.get("NONSITE_MEDIA")
    if named:
        if not Path(named).is_dir():
            raise CommandError(f"NONSITE_MEDIA={named}: folder not found")
        return Path(named), True
    import ultralytics

    log.warning("NONSITE_MEDIA is not set: building the demo from ultralytics' bus.jpg only; "
                "set it to the real photo folder (e.g. ../shared/media) for all scenarios")
    return Path(ultralytics.__file__).parent / "assets", False


def start_kafka(city: City, data_dir: Path, port: int) -> tuple[str, Optional[LocalKafka]]:
    external = os.environ.get("NONSITE_KAFKA_BOOTSTRAP")
    if external:
        create_city_topics(city, external)
        return external, None
    cluster = LocalKafka(data_dir, nodes=1, base_port=port)
    bootstrap = cluster.start()
    create_city_topics(city, bootstrap)
    return bootstrap, cluster


def spawn(name: str, argv: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen:
    logs.mkdir(parents=True, exist_ok=True)
    out = open(logs / f"{name}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "nonsite.cli", *argv], env=env, stdout=out,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def wait_for_port(port: int, process: subprocess.Popen, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CommandError(f"the {name} exited with code {process.returncode}; see var/demo/{name}.log")
        if port_open(port):
            return
        time.sleep(0.5)
    raise CommandError(f"the {name} did not open port {port} within {timeout:.0f}s; see var/demo/{name}.log")


def run_detector(config: Path, videos: dict[str, Path], env: dict[str, str]) -> int:
    """The detector over every video, as many at once as there are cores; prints each start as its file ends."""
    events = 0
    with ThreadPoolExecutor(max(1, min(len(videos), os.cpu_count() or 1))) as pool:
        running = [pool.submit(detect_file, config, cid, path, env) for cid, path in sorted(videos.items())]
        for done in as_completed(running):
            camera_id, lines = done.result()
            events += len(lines)
            for event in lines:
                if event["kind"] == "start":
                    print(f"  detector  {camera_id}  {event['scenario']:<17} start  track {event['track_id']}  "
                          f"dwell {event['dwell_s']:.0f}s  evidence {event['evidence'][0]['sha256'][:12]}…")
    return events


def detect_file(config: Path, camera_id: str, video: Path, env: dict[str, str]) -> tuple[str, list[dict]]:
    """``nonsite detect-file --publish`` on one video stamped from now: the camera and the events it printed."""
    result = subprocess.run([sys.executable, "-m", "nonsite.cli", "--config", str(config), "detect-file",
                             str(video), "--camera", camera_id, "--publish", "--start-epoch", str(time.time())],
                            env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise CommandError(f"detector on {camera_id} failed: {result.stderr.strip().splitlines()[-1:]}")
    return camera_id, [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def collect(bootstrap: str, city: City, seconds: float) -> tuple[dict[str, dict], list[dict]]:
    """Latest incident snapshots and every task on the bus after ``seconds`` of listening."""
    topics = city.kafka.topics
    consumer = clients.reader(bootstrap, topics.incidents, topics.tasks, auto_offset_reset="earliest",
                              consumer_timeout_ms=int(seconds * 1000))
    incidents: dict[str, dict] = {}
    tasks: list[dict] = []
    for message in consumer:
        value = json.loads(message.value)
        if message.topic == topics.incidents:
            incidents[value["incident_id"]] = value
        else:
            tasks.append(value)
    consumer.close()
    return incidents, tasks


def print_summary(city: City, incidents: dict[str, dict], tasks: list[dict], web_port: int) -> None:
    officers = {o.id: o.name for o in city.officers}
    labels = {s.id: s.label_zh for s in city.scenarios}
    print(f"\n{len(incidents)} incidents, {len(tasks)} tasks dispatched")
    for incident in sorted(incidents.values(), key=lambda i: i["first_seen"]):
        officer = officers.get(incident.get("officer_id") or "", "— (grid queue)")
        print(f"  {incident['incident_id'][:10]}  {labels.get(incident['scenario'], incident['scenario'])}"
              f" {incident['scenario']:<17} {incident['camera_id']}  {incident['state']:<11} → {officer}"
              f"{'  首违 first offence' if incident.get('first_offence') else ''}")
    print(f"""
Where to look:
  live alert wall      http://localhost:{web_port}/            (ops / ops-demo)
  officer app          http://localhost:{web_port}/officer     (zhangwei, lina, wangqiang, liuyang / off-demo)
  supervisor reports   http://localhost:{web_port}/reports     (sup / sup-demo)
  API description      http://localhost:{web_port}/docs
  closure report       .venv/bin/nonsite report --by scenario
  evidence files       {city.resolve_path(city.detector.evidence_dir)}
  logs                 {VAR / 'demo'}""")


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def run(args: argparse.Namespace, city: Optional[City]) -> int:
    from detector.samples import build_demo_videos

    assert city is not None
    media, full_set = media_folder()
    pool = ThreadPoolExecutor(1)
    building = pool.submit(build_demo_videos, media, CACHE / "demo")  # written while Kafka and the processes start
    pool.shutdown(wait=False)
    bootstrap, cluster = start_kafka(city, args.kafka_data_dir or DEFAULT_DATA_DIR, args.kafka_port)
    env = dict(os.environ, NONSITE_KAFKA_BOOTSTRAP=bootstrap, NONSITE_CONFIG=str(city.root))
    logs = VAR / "demo"
    processes = [
        spawn("worker", ["--config", str(city.root), "worker", "--web-port", str(args.worker_port)], env, logs),
        spawn("web", ["--config", str(city.root), "web", "--port", str(args.web_port)], env, logs),
    ]
    try:
        wait_for_port(args.worker_port, processes[0], "worker")
        wait_for_port(args.web_port, processes[1], "web")
        videos = {cid: path for cid, path in building.result().items() if city.camera(cid)}
        print(f"Kafka {bootstrap} · worker :{args.worker_port} · web :{args.web_port}\n"
              f"detector on {len(videos)} sample cameras ({'real photos' if full_set else 'ultralytics assets'})")
        events = run_detector(city.root, videos, env)
        incidents, tasks = collect(bootstrap, city, seconds=args.settle_s)
        print(f"\n{events} detector events published")
        print_summary(city, incidents, tasks, args.web_port)
        if not args.exit:
            print("\nRunning; Ctrl-C stops the worker and the web app (Kafka keeps running: nonsite kafka stop).")
            while all(p.poll() is None for p in processes):
                time.sleep(1)
        return 0 if incidents else 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(processes)
        if args.exit and cluster is not None:
            cluster.stop()
