"""What ``bench/city_bench.py`` measures of a running city, from outside its processes.

* :class:`WallListener`: a client of the live wall's stream (``GET /api/live``, server-sent events, logged in as
  an operator), noting when each new case first reaches the wall; with the case's ``last_seen`` at that moment
  (the ``observed_at`` of the detection that filed it: the capture time of the frame that completed the dwell)
  that is the frame -> wall latency, the dwell excluded.
* :class:`DetectionsListener`: the ``start`` detections on Kafka, with their publish time (the record's
  timestamp, set by the detector's producer) less their capture time: the detector's share of that latency.
* :func:`scrape`, :func:`delta` and :func:`quantile`: the detector's Prometheus series, and quantiles from
  histogram buckets (linear inside a bucket).
* :class:`ProcessSampler`: CPU seconds of each process (its threads and children), RSS of the detector
  over time, and the detector's main thread (the pipeline: motion, model, tracking, rules) apart from the others.

Example::

    >>> wall = WallListener("http://127.0.0.1:8080").start()        # doctest: +SKIP
    >>> before = scrape(9101); ...; after = scrape(9101)             # doctest: +SKIP
    >>> quantile(delta(after, before), "nonsite_detector_sample_age_seconds", 0.95)  # doctest: +SKIP
    0.41
"""
from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from typing import Optional

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


# ------------------------------------------------------------------ the live wall
class WallListener:
    """New cases as the wall's live stream delivers them: ``(incident id, camera, received, latency s)``."""

    def __init__(self, base_url: str, username: str = "ops", password: str = "ops-demo"):
        self.base_url, self.username, self.password = base_url, username, password
        self.cases: list[tuple[str, str, float, float]] = []
        self.known: set[str] = set()
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wall-listener", daemon=True)
        self.connected = threading.Event()

    def start(self) -> "WallListener":
        self._thread.start()
        if not self.connected.wait(30):
            raise SystemExit(f"the live wall stream did not answer: {self.error or 'no snapshot in 30 s'}")
        return self

    def stop(self) -> None:
        self._stop.set()

    def since(self, moment: float) -> list[float]:
        return [latency for _, _, received, latency in self.cases if received >= moment]

    def _run(self) -> None:
        from contract.clock import parse_iso

        try:
            with httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(30, read=60)) as client:
                answer = client.post("/api/login", json={"username": self.username, "password": self.password})
                answer.raise_for_status()
                headers = {"Authorization": f"Bearer {answer.json()['token']}"}
                with client.stream("GET", "/api/live", headers=headers) as stream:
                    kind = ""
                    for line in stream.iter_lines():
                        if self._stop.is_set():
                            return
                        if line.startswith("event:"):
                            kind = line[6:].strip()
                        elif line.startswith("data:"):
                            self._event(kind, line[5:].strip(), time.time(), parse_iso)
        except Exception as exc:  # reported in the round's result; the bench goes on without latencies
            if not self._stop.is_set():  # not the web app stopping at the end of the round
                self.error = f"{type(exc).__name__}: {exc}"
            self.connected.set()

    def _event(self, kind: str, data: str, received: float, parse_iso) -> None:
        import json

        value = json.loads(data)
        if kind == "snapshot":
            self.known.update(i["incident_id"] for i in value.get("incidents", []))
            self.connected.set()
        elif kind == "incident" and value["incident_id"] not in self.known:
            self.known.add(value["incident_id"])
            latency = received - parse_iso(value["last_seen"]).timestamp()
            self.cases.append((value["incident_id"], value["camera_id"], received, latency))


class DetectionsListener:
    """``start`` detections as Kafka hands them out: ``(received, published - captured)``; with the wall's figure,
    the detector's part (analysis, evidence, publishing) apart from the worker's and the web's."""

    def __init__(self, bootstrap: str, topic: str):
        self.bootstrap, self.topic = bootstrap, topic
        self.starts: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="detections-listener", daemon=True)

    def start(self) -> "DetectionsListener":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def since(self, moment: float) -> list[float]:
        return [delay for received, delay in self.starts if received >= moment]

    def _run(self) -> None:
        import json

        from kafka import KafkaConsumer

        from contract.clock import parse_iso

        consumer = KafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, group_id=None,
                                 auto_offset_reset="earliest", enable_auto_commit=False)
        try:
            while not self._stop.is_set():
                for batch in consumer.poll(timeout_ms=500).values():
                    for message in batch:
                        value = json.loads(message.value)
                        if value.get("kind") == "start":
                            captured = parse_iso(value["observed_at"]).timestamp()
                            self.starts.append((time.time(), message.timestamp / 1000 - captured))
        finally:
            consumer.close()


# ------------------------------------------------------------------ the detector's metrics
def scrape(port: int) -> Series:
    """Every sample of ``/metrics`` on ``port``: (name, sorted labels) -> value."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=20).text
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return series


def delta(after: Series, before: Series) -> Series:
    """Counters and histogram buckets over the window (gauges: their value at the end)."""
    return {key: value - before.get(key, 0.0) if _cumulative(key[0]) else value for key, value in after.items()}


def _cumulative(name: str) -> bool:
    return name.endswith(("_total", "_bucket", "_count", "_sum"))


def total(series: Series, name: str, **match: str) -> float:
    return sum(v for (n, labels), v in series.items() if n == name and _matches(labels, match))


def by_label(series: Series, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for (n, labels), value in series.items():
        if n == name:
            out[dict(labels).get(label, "")] += value
    return dict(out)


def _matches(labels: tuple[tuple[str, str], ...], match: dict[str, str]) -> bool:
    present = dict(labels)
    return all(present.get(k) == v for k, v in match.items())


def buckets(series: Series, name: str, **match: str) -> list[tuple[float, float]]:
    """``(upper bound, cumulative count)`` of a histogram, summed over the series that match."""
    summed: dict[float, float] = defaultdict(float)
    for (n, labels), value in series.items():
        if n == f"{name}_bucket" and _matches(labels, match):
            summed[float(dict(labels)["le"])] += value
    return sorted(summed.items())


def quantile(series: Series, name: str, share: float, **match: str) -> float:
    """The ``share`` quantile of a histogram's observations in ``series`` (NaN with none)."""
    counts = buckets(series, name, **match)
    if not counts or counts[-1][1] <= 0:
        return float("nan")
    wanted = share * counts[-1][1]
    lower, below = 0.0, 0.0
    for upper, cumulative in counts:
        if cumulative >= wanted:
            if math.isinf(upper):
                return lower  # beyond the last finite bucket: at least that
            inside = cumulative - below
            return lower + (upper - lower) * ((wanted - below) / inside if inside else 1.0)
        lower, below = upper, cumulative
    return lower


# ------------------------------------------------------------------ processes
class ProcessSampler:
    """CPU seconds of named processes (with their children) over a window; the detector's RSS over time."""

    def __init__(self, pids: dict[str, list[int]], detect_pid: int):
        self.pids, self.detect_pid = pids, detect_pid
        self.rss: list[tuple[float, int]] = []
        self._started = time.monotonic()
        self._cpu_before = self.cpu()
        self._threads_before = self.detect_threads()

    def _tree(self, pid: int) -> list[psutil.Process]:
        try:
            process = psutil.Process(pid)
            return [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu(self) -> dict[str, float]:
        seconds: dict[str, float] = {}
        for name, pids in self.pids.items():
            spent = 0.0
            for pid in pids:
                for process in self._tree(pid):
                    try:
                        times = process.cpu_times()
                        spent += times.user + times.system
                    except psutil.NoSuchProcess:
                        continue
            seconds[name] = spent
        return seconds

    def detect_threads(self) -> tuple[float, float]:
        """CPU seconds of the detector's main thread (the pipeline) and of all its other threads."""
        try:
            threads = psutil.Process(self.detect_pid).threads()
        except psutil.NoSuchProcess:
            return 0.0, 0.0
        main = sum(t.user_time + t.system_time for t in threads if t.id == self.detect_pid)
        return main, sum(t.user_time + t.system_time for t in threads if t.id != self.detect_pid)

    def sample_rss(self) -> Optional[int]:
        try:
            rss = psutil.Process(self.detect_pid).memory_info().rss
        except psutil.NoSuchProcess:
            return None
        self.rss.append((time.monotonic() - self._started, rss))
        return rss

    def window(self) -> dict:
        """CPU seconds per second of each process since this sampler began, and the detector's thread split."""
        seconds = time.monotonic() - self._started
        after, threads = self.cpu(), self.detect_threads()
        per_s = {name: (after[name] - self._cpu_before.get(name, 0.0)) / seconds for name in after}
        return {"seconds": seconds, "cpu_per_s": per_s,
                "detect_main_per_s": (threads[0] - self._threads_before[0]) / seconds,
                "detect_other_per_s": (threads[1] - self._threads_before[1]) / seconds}


def rss_growth(rss: list[tuple[float, int]], span_s: float = 600.0) -> dict[str, float]:
    """Mean RSS (MB) of the first and the last ``span_s`` (a third of the run when shorter) and their difference."""
    if not rss:
        return {"first MB": float("nan"), "last MB": float("nan"), "growth MB": float("nan")}
    span = min(span_s, max(rss[-1][0] / 3, 1e-9))
    first = [v for t, v in rss if t <= span] or [rss[0][1]]
    last = [v for t, v in rss if t >= rss[-1][0] - span] or [rss[-1][1]]
    first_mb, last_mb = sum(first) / len(first) / 2**20, sum(last) / len(last) / 2**20
    return {"first MB": first_mb, "last MB": last_mb, "growth MB": last_mb - first_mb, "span s": span}
