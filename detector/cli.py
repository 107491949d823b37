"""The detector's subcommands, called by ``nonsite`` (see :mod:`nonsite.cli`).

* ``nonsite detect-file VIDEO --camera ID [--annotated out.mp4] [--publish] [--start-time now|mtime|ISO]``:
  one video offline, at the camera's sample interval, with video time as the clock (its first frame at
  ``--start-time``: now by default; ``--start-epoch S`` too); a progress bar on stderr, the events as JSON
  lines on stdout, and at the end a summary per scenario (starts, ends, open) and the evidence folder on
  stderr.
* ``nonsite evidence verify EVENTS.jsonl [--store DIR]``: recompute the sha256 of every evidence file
  the events reference; exit 0 when all match, else 1 with one line per mismatch.
* ``nonsite detect [--camera ID ...] [--once] [--group G]``: every enabled camera live (or, with a group, the share
  the Kafka consumer group gives this process: docs/cameras.md): readers -> pipeline ->
  Kafka, Prometheus metrics on ``detector.metrics_port``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

import cv2
import structlog

from nonsite.errors import CommandError
from nonsite.config import Camera, City
from contract import ContractError, Detection

log = structlog.get_logger("detector.cli")


def _camera(city: City, camera_id: str) -> Camera:
    camera = city.camera(camera_id)
    if camera is None:
        known = ", ".join(c.id for c in city.cameras)
        raise CommandError(f"--camera: unknown camera '{camera_id}' (known: {known})")
    return camera


def load_detector(city: City):
    from detector.inference import Detector

    weights = city.detector.weights
    path = city.resolve_path(weights)
    if not path.exists() and Path(weights).parent != Path("."):
        raise CommandError(f"detector.weights: file not found: {path} (set NONSITE_WEIGHTS or the config)")
    from detector.inference import check_manifest

    mismatch = check_manifest(path)
    if mismatch:
        log.warning(mismatch)
    try:  # a bare standard name (yolov8n.pt) is downloaded by ultralytics
        return Detector.from_settings(city.detector, str(path) if path.exists() else weights)
    except (FileNotFoundError, ConnectionError) as exc:
        raise CommandError(f"detector.weights: cannot load {weights!r}: {exc}") from None


def _publisher(city: City, spool_dir: Optional[Path] = None):
    from detector.publisher import EventPublisher

    spool = spool_dir or city.resolve_path(city.detector.spool_dir)
    return EventPublisher(city.kafka.bootstrap, city.kafka.topics, spool, int(city.detector.spool_max_mb * (1 << 20)))


# ---------------------------------------------------------------- detect-file
def detect_file(args: argparse.Namespace, city: Optional[City]) -> int:
    from tqdm import tqdm

    from detector.evaluation.run import file_pipeline, tally
    from detector.pipeline import run_offline
    from detector.sources import SourceError, iter_file_frames
    from nonsite.evidence import EvidenceStore

    assert city is not None
    camera = _camera(city, args.camera)
    video: Path = args.video
    fps, count = probe_video(video)
    total = int(count / fps / camera.sample_interval_s) + 1 if count else None
    start_epoch = start_time(args, video)

    detector = load_detector(city)
    evidence_dir = city.resolve_path(city.detector.evidence_dir)
    pipeline = file_pipeline(city, camera, detector, EvidenceStore(evidence_dir))
    publisher = _publisher(city) if args.publish else None
    writer = None
    events = []

    def after(frame, found) -> None:
        nonlocal writer
        for event in found:
            print(event.to_json().decode(), flush=True)
            if publisher is not None:
                publisher.publish(event)
        if publisher is not None:  # camera status on video time, so disposal can be verified from it
            for status in pipeline.due_statuses(frame.timestamp, {camera.id: (True, f"file {video.name}")}):
                publisher.publish(status)
        if args.annotated is not None:
            writer = writer or _video_writer(args.annotated, frame.image, 1.0 / camera.sample_interval_s)
            writer.write(pipeline.render(frame))

    try:
        frames = iter_file_frames(video, camera.sample_interval_s, start_epoch=start_epoch, camera_id=camera.id)
        events = list(run_offline(pipeline, tqdm(frames, total=total, unit="frame", desc=camera.id,
                                                 file=sys.stderr), on_frame=after))
    except SourceError as exc:
        raise CommandError(str(exc)) from None
    finally:
        if writer is not None:
            writer.release()
        if publisher is not None:
            delivered = publisher.flush(30)
            publisher.close()
            if not delivered:
                log.warning("Kafka did not take every event; the rest stay in the spool",
                            spool=str(city.resolve_path(city.detector.spool_dir)))
    state = pipeline.cameras[camera.id]
    still_open = [v.scenario.id for v in state.rules.open_violations()]
    stats = pipeline.stats
    log.info("file done", camera=camera.id, frames=stats.frames, inferred=stats.inferred, skipped=stats.skipped,
             events=len(events), open_at_end=len(still_open))
    watched = [s.id for s in state.rules.scenarios]
    print(file_summary(f"{camera.id} {video.name}", stats.frames, stats.inferred, watched, tally(events),
                       still_open, evidence_dir, {e.uri for event in events for e in event.evidence}),
          file=sys.stderr, flush=True)
    return 0


def start_time(args: argparse.Namespace, video: Path) -> float:
    """Epoch seconds of the video's first frame: ``--start-epoch``, else ``--start-time`` (``now``, the default;
    ``mtime``, the file's modification time; or an ISO 8601 time with its offset)."""
    if getattr(args, "start_epoch", None) is not None:
        return float(args.start_epoch)
    when = getattr(args, "start_time", None) or "now"
    if when == "now":
        return time.time()
    if when == "mtime":
        return video.stat().st_mtime
    from contract.clock import is_utc_iso, parse_iso

    try:
        if not is_utc_iso(when):
            raise ValueError
        return parse_iso(when).timestamp()
    except ValueError:
        raise CommandError(f"--start-time: expected now, mtime or an ISO 8601 time with its offset "
                           f"(2026-05-01T08:00:00+08:00), got {when!r}") from None


def file_summary(title: str, frames: int, inferred: int, watched: list[str], counts: dict,
                 still_open: list[str], evidence_dir: Path, pictures: set[str]) -> str:
    """What ``detect-file`` found, per scenario the camera watches (and any other that fired), and where the
    evidence went; for stderr, after the progress bar.

    >>> print(file_summary("cam-01 dog.mp4", 120, 31, ["stray_dog"], {}, [], Path("/srv/var/evidence"), set()))
    cam-01 dog.mp4: 120 frames, 31 through the model
    scenario          starts  ends  open at the end
    stray_dog              0     0                0
    evidence: /srv/var/evidence (0 pictures)
    """
    lines = [f"{title}: {frames} frames, {inferred} through the model",
             f"{'scenario':<16}  starts  ends  open at the end"]
    for scenario in watched + [s for s in counts if s not in watched]:
        count = counts.get(scenario)
        starts, ends = (count.starts, count.ends) if count else (0, 0)
        lines.append(f"{scenario:<16}  {starts:>6}  {ends:>4}  {still_open.count(scenario):>15}")
    if not watched:
        lines.append("(no scenario: the camera has no zone of a kind any scenario watches)")
    lines.append(f"evidence: {evidence_dir} ({len(pictures)} pictures)")
    return "\n".join(lines)


# leading bytes of the containers FFmpeg is usually given: a file that starts like one is a video
# that is damaged or cut short; one that does not is no video at all
CONTAINER_MAGIC = ((4, b"ftyp", "MP4/MOV"), (0, b"RIFF", "AVI"), (0, b"\x1aE\xdf\xa3", "Matroska/WebM"),
                   (0, b"FLV", "FLV"), (0, b"\x00\x00\x01\xba", "MPEG-PS"), (0, b"G", "MPEG-TS"))


def container_of(head: bytes) -> Optional[str]:
    """The video container the file's first bytes announce, or None."""
    for offset, magic, name in CONTAINER_MAGIC:
        if head[offset:offset + len(magic)] == magic and (name != "MPEG-TS" or head[188:189] in (b"G", b"")):
            return name
    return None


def probe_video(video: Path) -> tuple[float, int]:
    """``(fps, frame count)`` of a video whose first frame decodes; else one line saying what is wrong.

    Raises :class:`~nonsite.errors.CommandError` naming the file: missing, empty, not a video, or a
    video that is damaged or truncated (FFmpeg cannot open it, or cannot decode its first frame).
    """
    from detector.sources import SourceError, open_capture, video_fps

    if not video.is_file():
        raise CommandError(f"{video}: video file not found")
    size = video.stat().st_size
    if size == 0:
        raise CommandError(f"{video}: empty file (0 bytes), not a video")
    with video.open("rb") as file:
        container = container_of(file.read(512))
    broken = (f"damaged or truncated {container} video ({size} bytes)" if container
              else f"not a video file ({size} bytes, no known video container header)")
    with native_stderr_silenced():  # FFmpeg's and OpenCV's own lines ("moov atom not found", ...)
        try:
            capture = open_capture(str(video))
        except SourceError:
            capture = None
        try:
            readable = capture is not None and capture.grab() and capture.retrieve()[0]
            fps, count = (video_fps(capture), int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)) if readable else (0, 0)
        finally:
            if capture is not None:
                capture.release()
    if capture is None:
        raise CommandError(f"{video}: {broken}: FFmpeg cannot open it")
    if not readable:
        raise CommandError(f"{video}: {broken}: no frame can be decoded")
    return fps, count


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null meanwhile: native libraries write there, past ``sys.stderr``."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _video_writer(path: Path, image, fps: float) -> cv2.VideoWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (image.shape[1], image.shape[0]))
    if not writer.isOpened():
        raise CommandError(f"--annotated: cannot write video {path}")
    return writer


# ---------------------------------------------------------------- evidence verify
def read_events(path: Path) -> list[Detection]:
    """Detection events from a JSON-lines file; other records (camera status) and blank lines are skipped."""
    events = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(data, dict) or "violation_id" not in data:
            continue
        try:
            events.append(Detection.from_dict(data))
        except ContractError as exc:
            raise CommandError(f"{path}:{number}: {exc}") from None
    return events


def evidence_verify(args: argparse.Namespace, city: Optional[City]) -> int:
    from nonsite.evidence import verify

    assert city is not None
    if not args.events.is_file():
        raise CommandError(f"{args.events}: events file not found")
    store = args.store or city.resolve_path(city.detector.evidence_dir)
    events = read_events(args.events)
    problems = verify(events, store)
    for line in problems:
        print(line)
    files = len({(e.uri, e.sha256) for event in events for e in event.evidence})
    log.info("evidence verified", events=len(events), files=files, problems=len(problems), store=str(store))
    return 1 if problems else 0


# ---------------------------------------------------------------- detect (live)
def detect(args: argparse.Namespace, city: Optional[City]) -> int:
    from detector import metrics
    from detector.camera_reader import CameraReader
    from detector.evidence_stage import EvidenceStage
    from detector.live import LiveCameras, detect_loop, shutdown
    from detector.pipeline import Pipeline
    from nonsite.evidence import EvidenceStore

    assert city is not None
    group = getattr(args, "group", None) or city.detector.sharing.group
    if group and not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", group):
        raise CommandError(f"--group: letters, digits, '.', '_' and '-' only (at most 200), got {group!r}")
    cameras = [c for c in city.cameras if c.enabled]
    if group and (args.camera or args.once):
        raise CommandError(f"--{'camera' if args.camera else 'once'}: not with a group ({group}): "
                           f"the group decides which cameras this detector runs")
    if args.camera:
        cameras = [_camera(city, camera_id) for camera_id in args.camera]
    if not cameras:
        raise CommandError("no enabled camera in the configuration")
    port = args.metrics_port if args.metrics_port is not None else city.detector.metrics_port
    try:
        bound = metrics.start_metrics_server(port)
    except OSError as exc:
        raise CommandError(f"detector.metrics_port: cannot serve metrics on port {port}: {exc.strerror} "
                           f"(set --metrics-port, 0 = any free port)") from None
    log.info("metrics served", port=bound)

    detector = load_detector(city)
    pipeline = Pipeline(cameras, city.scenarios, city.detector, detector,
                        EvidenceStore(city.resolve_path(city.detector.evidence_dir)))
    publisher = _publisher(city, getattr(args, "spool_dir", None))
    live = LiveCameras(pipeline, lambda camera: CameraReader(
        camera, on_status=live.on_status, decoder=city.detector.decoder, rtsp_transport=city.detector.rtsp_transport))
    share = _join_group(city, group) if group else None
    live.run({} if share else {c.id: c for c in cameras})
    stop = StopSignal()
    evidence = EvidenceStage(pipeline.finish, publisher.publish, stop=stop.event).start()
    previous = {s: signal.signal(s, stop.received) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        detect_loop(pipeline, live, evidence, stop.event, args.once, share)
        evidence.drain()  # --once: every event of the files, with its evidence (a stop ends the wait)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutdown(live, publisher, share, evidence=evidence)
    stats = pipeline.stats
    log.info("detector stopped", frames=stats.frames, inferred=stats.inferred, skipped=stats.skipped,
             events=stats.events, spool=publisher.spool_depth)
    if stop.signalled:
        leave_now(0)
    return 0


class StopSignal:
    """SIGTERM or SIGINT: the detect loop ends; the process exits within ``STOP_WITHIN_S`` + 1 s whatever happens."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signalled = False

    def received(self, signum: int, _frame) -> None:
        from detector.live import STOP_WITHIN_S

        if not self.signalled:
            self.signalled = True
            deadline = threading.Timer(STOP_WITHIN_S + 1, leave_now, args=(0, f"{signal.Signals(signum).name} "
                                       f"{STOP_WITHIN_S + 1:g} s ago and the stop is still waiting; exiting now"))
            deadline.daemon = True
            deadline.start()
        self.event.set()


def leave_now(code: int, why: str = "") -> None:
    """Exit without the interpreter's teardown: once the spool is closed nothing is left to keep, and the model
    runtimes' finalisation took 2 to 5 s at load average 10 (a supervisor kills at 10 s)."""
    if why:
        print(f"nonsite detect: {why}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _join_group(city: City, group: str):
    """Publish cameras.yaml to the cameras topic (docs/cameras.md), then join the detectors' consumer group."""
    from kafka.errors import KafkaError

    from detector.camera_topic import ensure_cameras_topic, publish_cameras
    from detector.sharing import CameraShare
    from nonsite.errors import KafkaSetupError

    try:
        ensure_cameras_topic(city)
        publish_cameras(city)
    except (KafkaError, KafkaSetupError) as exc:  # the group runs what the topic holds; a later start publishes
        log.warning("cameras not published: Kafka did not answer", error=f"{type(exc).__name__}: {exc}")
    sharing = city.detector.sharing
    return CameraShare(city.kafka.bootstrap, city.kafka.topics.cameras, group, sharing.session_timeout_s).start()
