"""The detector commands end to end: ``nonsite detect-file``, ``nonsite evidence verify``, ``nonsite detect --once``.

Real model, real photos made into videos, real Kafka for the live command.  The configuration is a
temporary copy of ``configs/`` with shorter dwell times (so the evidence and spool land in the
temporary folder too: paths resolve against the config folder's parent).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import yaml

from conftest import PROJECT, reader_from_beginning
from detector.samples import DOG_REGION, build_still_video
from contract import CameraStatus, Detection

pytestmark = [pytest.mark.model, pytest.mark.slow]

NONSITE = [sys.executable, "-c", "import sys; from nonsite.cli import main; sys.exit(main())"]


def city_copy(tmp_path: Path, dwell_s: float, video: Path, system: dict | None = None) -> Path:
    config = tmp_path / "configs"
    shutil.copytree(PROJECT / "configs", config)
    scenarios = yaml.safe_load((config / "scenarios.yaml").read_text(encoding="utf-8"))
    for scenario in scenarios["scenarios"]:
        scenario["dwell_s"] = dwell_s
    (config / "scenarios.yaml").write_text(yaml.safe_dump(scenarios, allow_unicode=True), encoding="utf-8")
    cameras = yaml.safe_load((config / "cameras.yaml").read_text(encoding="utf-8"))
    cameras["cameras"][0]["source"] = str(video)  # cam-01
    (config / "cameras.yaml").write_text(yaml.safe_dump(cameras, allow_unicode=True), encoding="utf-8")
    if system:
        settings = yaml.safe_load((config / "nonsite.yaml").read_text(encoding="utf-8"))
        for section, values in system.items():
            settings[section].update(values)
        (config / "nonsite.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return config


def nonsite(config: Path, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(NONSITE + ["--config", str(config), *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_detect_file_prints_events_writes_annotated_video_and_evidence_verifies(
        tmp_path, weights_path, media_dir):
    video = build_still_video(media_dir / "dog.jpg", tmp_path / "dog.mp4", hold_s=90, gone_s=30,
                              removed="paint", regions=[DOG_REGION])
    config = city_copy(tmp_path, 60, video)
    annotated = tmp_path / "annotated.mp4"
    run = nonsite(config, "detect-file", str(video), "--camera", "cam-01", "--annotated", str(annotated),
                  env={"NONSITE_WEIGHTS": str(weights_path)})
    assert run.returncode == 0, run.stderr[-2000:]
    events = [Detection.from_json(line) for line in run.stdout.splitlines()]  # stdout holds only JSON lines
    assert [(e.kind, e.scenario) for e in events] == [("start", "stray_dog"), ("end", "stray_dog")]
    capture = cv2.VideoCapture(str(annotated))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 120
    capture.release()

    events_file = tmp_path / "events.jsonl"
    events_file.write_text(run.stdout, encoding="utf-8")
    verified = nonsite(config, "evidence", "verify", str(events_file))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    store = tmp_path / "var" / "evidence"
    first = store / events[0].evidence[0].uri
    assert first.is_file()
    first.write_bytes(first.read_bytes()[:-10])  # truncate one evidence file
    altered = nonsite(config, "evidence", "verify", str(events_file))
    assert altered.returncode == 1
    assert altered.stdout.splitlines() == [line for line in altered.stdout.splitlines() if "annotated" in line]
    assert len(altered.stdout.splitlines()) == 1


def test_detect_file_unknown_camera_is_one_line(tmp_path, weights_path, media_dir):
    video = build_still_video(media_dir / "dog.jpg", tmp_path / "dog.mp4", hold_s=3, gone_s=1)
    config = city_copy(tmp_path, 60, video)
    run = nonsite(config, "detect-file", str(video), "--camera", "cam-99")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("nonsite: --camera: unknown camera 'cam-99'")


def unreadable_media(tmp_path: Path, media_dir: Path) -> dict[str, tuple[Path, str]]:
    """Files named .mp4 that are no playable video, with what ``detect-file`` must say about each."""
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("camera notes, not a video\n", encoding="utf-8")
    whole = build_still_video(media_dir / "dog.jpg", tmp_path / "whole.mp4", hold_s=3, gone_s=1).read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(whole[:len(whole) // 3])  # an upload cut short
    return {"empty": (empty, "empty file (0 bytes), not a video"),
            "text": (text, f"not a video file ({text.stat().st_size} bytes, no known video container header): "
                           f"FFmpeg cannot open it"),
            "truncated": (truncated, f"damaged or truncated MP4/MOV video ({len(whole) // 3} bytes): "
                                     f"FFmpeg cannot open it")}


@pytest.mark.parametrize("kind", ["empty", "text", "truncated"])
def test_detect_file_unreadable_media_is_one_line_naming_the_file(tmp_path, media_dir, kind):
    video, problem = unreadable_media(tmp_path, media_dir)[kind]
    config = city_copy(tmp_path, 60, video)
    run = nonsite(config, "detect-file", str(video), "--camera", "cam-01", timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"nonsite: {video}: {problem}"]  # no traceback, no FFmpeg noise
    assert run.stdout == ""


def records(bootstrap: str, topic: str, idle_s: float = 3.0) -> list[bytes]:
    consumer = reader_from_beginning(bootstrap, topic)
    try:
        values, quiet_since = [], time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            batch = consumer.poll(timeout_ms=500)
            for items in batch.values():
                values.extend(r.value for r in items)
                quiet_since = time.monotonic()
        return values
    finally:
        consumer.close()


@pytest.mark.kafka
def test_detect_once_runs_a_file_camera_live_to_kafka(tmp_path, weights_path, media_dir, kafka_bootstrap,
                                                      topic_factory):
    video = build_still_video(media_dir / "dog.jpg", tmp_path / "dog.mp4", hold_s=20, gone_s=12,
                              removed="paint", regions=[DOG_REGION])
    detections, statuses = topic_factory("detections", partitions=2), topic_factory("status", partitions=2)
    config = city_copy(tmp_path, 10, video, {
        "kafka": {"topics": {"detections": detections, "camera_status": statuses}},
        "detector": {"lost_after_s": 5, "status_interval_s": 4}})
    run = nonsite(config, "detect", "--once", "--camera", "cam-01", "--metrics-port", "0",
                  env={"NONSITE_WEIGHTS": str(weights_path), "NONSITE_KAFKA_BOOTSTRAP": kafka_bootstrap},
                  timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    events = [Detection.from_json(v) for v in records(kafka_bootstrap, detections)]
    assert [(e.kind, e.scenario, e.camera_id) for e in events] == [("start", "stray_dog", "cam-01"),
                                                                   ("end", "stray_dog", "cam-01")]
    status = [CameraStatus.from_json(v) for v in records(kafka_bootstrap, statuses)]
    assert status[0].state == "online"
    assert status[-1].state == "offline" and "end of file" in status[-1].reason
    assert any(s.active == ["stray_dog/"] for s in status)  # the violation was reported present
    assert (tmp_path / "var" / "evidence").is_dir()


@pytest.mark.kafka
def test_detect_file_publish_sends_events_and_video_time_status(tmp_path, weights_path, media_dir, kafka_bootstrap,
                                                               topic_factory):
    video = build_still_video(media_dir / "dog.jpg", tmp_path / "dog.mp4", hold_s=90, gone_s=30,
                              removed="paint", regions=[DOG_REGION])
    detections, statuses = topic_factory("detections", partitions=2), topic_factory("status", partitions=2)
    config = city_copy(tmp_path, 60, video, {"kafka": {"topics": {"detections": detections,
                                                                  "camera_status": statuses}}})
    run = nonsite(config, "detect-file", str(video), "--camera", "cam-01", "--publish", "--start-epoch",
                  "1800000000", env={"NONSITE_WEIGHTS": str(weights_path), "NONSITE_KAFKA_BOOTSTRAP": kafka_bootstrap})
    assert run.returncode == 0, run.stderr[-2000:]
    printed = [Detection.from_json(line) for line in run.stdout.splitlines()]
    published = [Detection.from_json(v) for v in records(kafka_bootstrap, detections)]
    assert [e.event_id for e in published] == [e.event_id for e in printed]
    assert [e.kind for e in published] == ["start", "end"]
    assert published[0].observed_at == "2027-01-15T08:01:00.000Z"  # video time from --start-epoch, 60 s in
    status = [CameraStatus.from_json(v) for v in records(kafka_bootstrap, statuses)]
    assert [s.observed_at[11:19] for s in status] == ["08:00:00", "08:00:30", "08:01:00", "08:01:30"]
    assert [s.active for s in status] == [[], [], ["stray_dog/"], ["stray_dog/"]]
