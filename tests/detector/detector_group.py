"""Helpers for the detector scale-out tests: a city of N file cameras, ``nonsite detect --group`` processes,
their metrics, and the records on the detections topic."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Optional

import yaml

from conftest import PROJECT, free_port_block, reader_from_beginning

NONSITE = [sys.executable, "-c", "import sys; from nonsite.cli import main; sys.exit(main())"]


def group_city(tmp: Path, video: Path, cameras: int, dwell_s: float, session_timeout_s: float, shards: int) -> Path:
    """A copy of configs/ with ``cameras`` file cameras of ``video`` (a dog, watched anywhere), unique topics."""
    config = tmp / "configs"
    shutil.copytree(PROJECT / "configs", config)
    scenarios = yaml.safe_load((config / "scenarios.yaml").read_text(encoding="utf-8"))
    for scenario in scenarios["scenarios"]:
        scenario["dwell_s"] = dwell_s
    (config / "scenarios.yaml").write_text(yaml.safe_dump(scenarios, allow_unicode=True), encoding="utf-8")
    entries = [{"id": f"cam-f{n}", "name": f"failover camera {n}", "source": str(video), "grid": "G01",
                "sample_interval_s": 1, "location": {"lat": 30.65 + n * 0.01, "lon": 104.06},
                "zones": [{"id": "z-road", "kind": "road", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]}
               for n in range(1, cameras + 1)]
    (config / "cameras.yaml").write_text(yaml.safe_dump({"cameras": entries}, allow_unicode=True), encoding="utf-8")
    settings = yaml.safe_load((config / "nonsite.yaml").read_text(encoding="utf-8"))
    tag = uuid.uuid4().hex[:8]
    settings["kafka"]["topics"] = {k: f"t{tag}.{k.replace('_', '-')}" for k in settings["kafka"]["topics"]}
    settings["kafka"]["topics"]["cameras"] = f"t{tag}.cameras"
    settings["detector"].update({"status_interval_s": 2, "update_interval_s": 5,
                                 "sharing": {"group": f"detectors-{tag}", "shards": shards,
                                             "session_timeout_s": session_timeout_s}})
    (config / "nonsite.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return config


class DetectorProcess:
    """``nonsite detect`` in a process of its own, with its own spool folder (its own copy of the config, as on a
    machine of its own), log in a file."""

    def __init__(self, config: Path, tmp: Path, name: str, env: dict[str, str], *extra: str):
        self.name, self.env, self.extra = name, env, extra
        self.log_path = tmp / f"{name}.log"
        self.spool = tmp / f"spool-{name}"
        self.config = tmp / f"configs-{name}"
        shutil.copytree(config, self.config)
        settings = yaml.safe_load((self.config / "nonsite.yaml").read_text(encoding="utf-8"))
        settings["detector"]["spool_dir"] = str(self.spool)
        (self.config / "nonsite.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
        self.port = free_port_block(1)
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "DetectorProcess":
        command = NONSITE + ["--config", str(self.config), "detect", "--metrics-port", str(self.port), *self.extra]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=PROJECT, env={**os.environ, **self.env}, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def metrics(self) -> str:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=3).read().decode()
        except OSError:
            return ""

    def cameras_up(self) -> set[str]:
        """The cameras this process reads frames of now."""
        return set(re.findall(r'^nonsite_detector_camera_up\{camera="([^"]+)"\} 1\.0$', self.metrics(), re.M))

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def terminate(self, timeout: float = 30) -> float:
        """SIGTERM; returns how long the process took to exit."""
        assert self.process is not None
        began = time.monotonic()
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return time.monotonic() - began

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_until(condition, timeout: float, what: str, processes=()) -> float:
    """Poll ``condition`` until true; returns when (monotonic). Fails naming ``what`` with the processes' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        for process in processes:
            assert process.process.poll() is None, f"{process.name} exited:\n{process.log_tail()}"
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.name}: up {sorted(p.cameras_up())}\n{p.log_tail(15)}" for p in processes)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")


class TopicRecords:
    """Every record of a topic, polled on demand, decoded by ``decode``."""

    def __init__(self, bootstrap: str, topic: str, decode):
        self.consumer = reader_from_beginning(bootstrap, topic)
        self.decode = decode
        self.items: list = []

    def poll(self) -> list:
        for records in self.consumer.poll(timeout_ms=200).values():
            self.items.extend(self.decode(r.value) for r in records)
        return self.items

    def close(self) -> None:
        self.consumer.close()
