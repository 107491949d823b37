"""Prometheus metrics of the detector process: one registry, served on one HTTP port.

Every stage imports the metric it updates from here, so names and labels are defined once.
Per-camera series are labelled ``camera``; there are at most a few hundred cameras per process.

Example::

    >>> from detector import metrics
    >>> metrics.FRAMES_READ.labels(camera="cam-01").inc()
    >>> port = metrics.start_metrics_server(0)          # doctest: +SKIP  (0 = any free port)
    >>> # curl localhost:<port>/metrics | grep nonsite_detector_frames_read_total
"""
from __future__ import annotations

from typing import Optional

from prometheus_client import (CollectorRegistry, Counter, Gauge, GCCollector, Histogram, PlatformCollector,
                               ProcessCollector, start_http_server)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

_PREFIX = "nonsite_detector"

# ------------------------------------------------------------------ capture (detector/camera_reader.py)
FRAMES_READ = Counter(f"{_PREFIX}_frames_read", "Frames sampled from a camera and handed to the pipeline",
                      ["camera"], registry=REGISTRY)
FRAMES_DROPPED = Counter(f"{_PREFIX}_frames_dropped",
                         "Sampled frames replaced by a newer one before the pipeline took them",
                         ["camera"], registry=REGISTRY)
CAMERA_UP = Gauge(f"{_PREFIX}_camera_up", "1 while the camera delivers frames, 0 while it is offline",
                  ["camera"], registry=REGISTRY)
SAMPLE_AGE = Histogram(f"{_PREFIX}_sample_age_seconds",
                       "A sampled frame's capture stamp to the end of its analysis (model, tracking, rules)",
                       ["camera"], buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 30.0, 60.0),
                       registry=REGISTRY)
CAMERA_RECONNECTS = Counter(f"{_PREFIX}_camera_reconnects", "Attempts to reopen a camera after a failure",
                            ["camera"], registry=REGISTRY)

# ------------------------------------------------------------------ sharing the city (detector/sharing.py)
CAMERAS_OWNED = Gauge(f"{_PREFIX}_cameras_owned", "Cameras this process runs (all enabled ones without a group)",
                      registry=REGISTRY)
SHARDS_OWNED = Gauge(f"{_PREFIX}_shards_owned", "Partitions of the cameras topic the group gave this process",
                     registry=REGISTRY)
CAMERA_REBALANCES = Counter(f"{_PREFIX}_camera_rebalances", "Assignments of camera shards to this process",
                            registry=REGISTRY)
CAMERA_RECORDS_REFUSED = Counter(f"{_PREFIX}_camera_records_refused",
                                 "Records of the cameras topic that are no valid camera (logged with the reason)",
                                 registry=REGISTRY)

# ------------------------------------------------------------------ motion and inference
FRAMES_SKIPPED_MOTION = Counter(f"{_PREFIX}_frames_skipped_motion",
                                "Frames not sent to the model because nothing moved since the last inference",
                                ["camera"], registry=REGISTRY)
FRAMES_INFERRED = Counter(f"{_PREFIX}_frames_inferred", "Frames the model ran on", ["camera"], registry=REGISTRY)
INFERENCE_SECONDS = Histogram(f"{_PREFIX}_inference_seconds", "Wall time of one model call (one batch)",
                              buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
                              registry=REGISTRY)
BATCH_SIZE = Histogram(f"{_PREFIX}_batch_size", "Frames per model call",
                       buckets=(1, 2, 4, 8, 16, 32, 64), registry=REGISTRY)
DETECTIONS = Counter(f"{_PREFIX}_detections", "Objects the model reported, by class",
                     ["object_class"], registry=REGISTRY)

# ------------------------------------------------------------------ rules
VIOLATIONS = Counter(f"{_PREFIX}_violations", "Violation events by scenario and kind (start, update, end)",
                     ["scenario", "kind"], registry=REGISTRY)

# ------------------------------------------------------------------ evidence (detector/evidence_stage.py)
EVIDENCE_QUEUE = Gauge(f"{_PREFIX}_evidence_queue_depth",
                       "Records in the evidence stage not yet handed to the publisher (the one in its render included)",
                       registry=REGISTRY)
EVIDENCE_RENDER_SECONDS = Histogram(f"{_PREFIX}_evidence_render_seconds",
                                    "Wall time to store one detection's evidence pictures with their masked copies",
                                    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0), registry=REGISTRY)
EVIDENCE_WAITED = Counter(f"{_PREFIX}_evidence_backpressure_seconds",
                          "Time the detect loop waited for room in the evidence stage's full queue",
                          registry=REGISTRY)

# ------------------------------------------------------------------ publishing (detector/publisher.py)
EVENTS_PUBLISHED = Counter(f"{_PREFIX}_events_published", "Records acknowledged by Kafka, by topic",
                           ["topic"], registry=REGISTRY)
PUBLISH_ERRORS = Counter(f"{_PREFIX}_publish_errors", "Failed sends to Kafka (records were kept in the spool)",
                         registry=REGISTRY)
KAFKA_UP = Gauge(f"{_PREFIX}_kafka_up", "1 while Kafka acknowledges sends, 0 while events go to the spool",
                 registry=REGISTRY)
SPOOL_DEPTH = Gauge(f"{_PREFIX}_spool_depth", "Records waiting in the on-disk spool", registry=REGISTRY)
SPOOL_BYTES = Gauge(f"{_PREFIX}_spool_bytes", "Bytes of records waiting in the on-disk spool", registry=REGISTRY)
SPOOL_OVERFLOW = Counter(f"{_PREFIX}_spool_overflow",
                         "Records dropped because the spool was full (Kafka down for too long)",
                         registry=REGISTRY)


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> int:
    """Serve ``/metrics`` of :data:`REGISTRY` in a daemon thread; returns the bound port (``0`` picks one)."""
    server, _thread = start_http_server(port, addr=addr, registry=REGISTRY)
    return int(server.server_address[1])


def sample(name: str, labels: Optional[dict[str, str]] = None) -> float:
    """Current value of one series (``0.0`` when it has no sample yet); for tests and status lines."""
    value = REGISTRY.get_sample_value(name, labels or {})
    return 0.0 if value is None else float(value)
