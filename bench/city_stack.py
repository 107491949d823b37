"""The processes of one live city for ``bench/city_bench.py``: Kafka, ``nonsite worker``, ``nonsite web`` and
``nonsite detect``, each the real CLI in its own process, on a temporary copy of ``configs/``.

:func:`city_config` writes the copy: topics and app id of its own (so rounds never see each other's cases),
``cameras`` cameras reading the given RTSP URLs, every ``zoned_every``-th with four ``sidewalk`` zones (the
quarters of the frame: a car standing still in any of them is ``sidewalk_parking``), each with its own place,
about 220 m apart, so the worker's cross-camera dedup never joins two cameras' cases.

Example::

    >>> folder = city_config(Path("/tmp/r1"), ["rtsp://127.0.0.1:41000/cam000"], "r1", "pyav", 2.0, 20.0)
    ... # doctest: +SKIP
    >>> with CityStack(folder, bootstrap, Path("/tmp/r1")) as stack:                        # doctest: +SKIP
    ...     stack.start_detect()
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import yaml

from rtsp_farm import Running

PROJECT = Path(__file__).resolve().parents[1]
QUARTERS = {"nw": [[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]], "ne": [[0.5, 0], [1, 0], [1, 0.5], [0.5, 0.5]],
            "sw": [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]], "se": [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]]}
START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def camera_entries(urls: list[str], interval_s: float, zoned_every: int = 1) -> list[dict]:
    """One camera per URL, ids ``cam-000`` ..., grids G01 and G02 in turn, 0.002° of latitude apart (~220 m);
    every ``zoned_every``-th camera (from the first) has the four sidewalk zones, the others none."""
    return [{"id": f"cam-{n:03d}", "name": f"bench camera {n}", "source": url,
             "location": {"lat": round(30.0 + 0.002 * n, 6), "lon": 104.0, "address": f"bench street {n}"},
             "grid": "G01" if n % 2 == 0 else "G02", "sample_interval_s": interval_s,
             "zones": [{"id": f"z-{name}", "kind": "sidewalk", "polygon": polygon}
                       for name, polygon in QUARTERS.items()] if n % zoned_every == 0 else []}
            for n, url in enumerate(urls)]


def city_config(folder: Path, urls: list[str], tag: str, decoder: str, interval_s: float, dwell_s: float,
                bootstrap: str = "localhost:9092", zoned_every: int = 1) -> Path:
    """``folder/configs``: configs/ with these cameras, topics ``<tag>.*``, app id ``nonsite-<tag>``, the
    ``sidewalk_parking`` dwell ``dwell_s``, state, evidence, spool and history under ``folder``."""
    configs = folder / "configs"
    if configs.exists():
        shutil.rmtree(configs)
    shutil.copytree(PROJECT / "configs", configs)
    settings = yaml.safe_load((configs / "nonsite.yaml").read_text(encoding="utf-8"))
    settings["kafka"]["bootstrap"] = bootstrap
    settings["kafka"]["topics"] = {k: f"{tag}.{k.replace('_', '-')}" for k in settings["kafka"]["topics"]}
    settings["stream"].update({"app_id": f"nonsite-{tag}", "data_dir": str(folder / "worker")})
    settings["detector"].update({"decoder": decoder, "rtsp_transport": "udp",  # rtsp-server-perl: UDP only
                                 "evidence_dir": str(folder / "evidence"), "spool_dir": str(folder / "spool")})
    settings["history"]["database"] = str(folder / "history.sqlite")
    (configs / "nonsite.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    scenarios = yaml.safe_load((configs / "scenarios.yaml").read_text(encoding="utf-8"))
    for scenario in scenarios["scenarios"]:
        if scenario["id"] == "sidewalk_parking":
            scenario["dwell_s"] = dwell_s
    (configs / "scenarios.yaml").write_text(yaml.safe_dump(scenarios, allow_unicode=True), encoding="utf-8")
    cameras = {"cameras": camera_entries(urls, interval_s, zoned_every)}
    (configs / "cameras.yaml").write_text(yaml.safe_dump(cameras, allow_unicode=True), encoding="utf-8")
    return configs


def start_kafka(folder: Path) -> tuple[str, Optional[object]]:
    """NONSITE_KAFKA_BOOTSTRAP when set, else a local single-node Kafka in ``folder`` (stopped by the caller)."""
    external = os.environ.get("NONSITE_KAFKA_BOOTSTRAP")
    if external:
        return external, None
    from nonsite.devtools.kafka_local import PORT_STEP, LocalKafka

    for base in range(23092, 60000, 1000):
        if not any(port_open(base + i * PORT_STEP + j) for i in range(1) for j in (0, 1)):
            cluster = LocalKafka(folder / "kafka", nodes=1, base_port=base)
            return cluster.start(), cluster
    raise SystemExit("no free port pair for a local Kafka")


class CityStack(Running):
    """The worker and the web app of one round's city, then ``nonsite detect`` on its cameras."""

    def __init__(self, configs: Path, bootstrap: str, folder: Path):
        self.configs, self.bootstrap, self.folder = configs, bootstrap, folder
        self.env = dict(os.environ, NONSITE_KAFKA_BOOTSTRAP=bootstrap, PYTHONUNBUFFERED="1",
                        OPENCV_FFMPEG_CAPTURE_OPTIONS="rtsp_transport;udp")  # decoder opencv: UDP like pyav
        self.processes: dict[str, subprocess.Popen] = {}
        self.web_port = free_port()
        self.metrics_port = free_port()

    def start(self) -> None:
        from nonsite.config import load_city
        from nonsite.kafka.admin import create_city_topics

        create_city_topics(load_city(self.configs), self.bootstrap)
        worker_port = free_port()
        self._spawn("worker", ["worker", "--web-port", str(worker_port), "--data-dir", str(self.folder / "worker")])
        self._spawn("web", ["web", "--host", "127.0.0.1", "--port", str(self.web_port)])
        self._wait_port("worker", worker_port)
        self._wait_port("web", self.web_port)

    def start_detect(self) -> subprocess.Popen:
        """``nonsite detect`` on every camera of the config, metrics on :attr:`metrics_port`."""
        process = self._spawn("detect", ["detect", "--metrics-port", str(self.metrics_port)], "INFO")
        self._wait_port("detect", self.metrics_port)
        return process

    def _spawn(self, name: str, argv: list[str], level: str = "WARNING") -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "nonsite.cli", "--config", str(self.configs), "--log-level", level, *argv],
            cwd=PROJECT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        return self.processes[name]

    def _wait_port(self, name: str, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_open(port):
            process = self.processes[name]
            if process.poll() is not None:
                raise SystemExit(f"nonsite {name} exited with code {process.returncode}: {self.log_tail(name)}")
            if time.monotonic() > deadline:
                raise SystemExit(f"nonsite {name} did not open port {port} in {START_TIMEOUT_S:.0f} s")
            time.sleep(0.5)

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.folder / f"{name}.log"
        text = path.read_text(errors="replace").splitlines() if path.exists() else []
        return "\n".join(text[-lines:])

    def stop_process(self, name: str, timeout_s: float = 30.0) -> Optional[float]:
        """SIGTERM to ``name``'s process group; seconds it took to exit (None: killed after ``timeout_s``)."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return 0.0
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
            return time.monotonic() - started
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            return None

    def stop(self) -> None:
        for name in ("detect", "web", "worker"):
            self.stop_process(name)
