"""Capture sources against real media and real servers.

Test frames are ultralytics' bus.jpg (a real street photo) with the frame number drawn into the
top row as black/white cells, so every test can read back exactly which frame it got.  Videos are
H.264 made by ffmpeg; the RTSP stream is served by a real RTSP server (Debian's rtsp-server-perl)
fed by ffmpeg, and cut and restored by killing and restarting both.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import pytest
import ultralytics

from conftest import fail_or_skip, free_port_block
from detector import metrics
from detector.camera_reader import CameraReader
from detector.sources import Frame, SourceError, iter_file_frames, redact, resolve_source, source_kind
from nonsite.config import Camera, Location
from nonsite.devtools.rtsp_server import listening, udp_sockets

BUS = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"
CELL, BITS = 32, 10
FPS = 10


# ------------------------------------------------------------------ coded frames and videos
def base_image() -> np.ndarray:
    image = cv2.imread(str(BUS))
    assert image is not None, f"cannot read {BUS}"
    return cv2.resize(image, (480, 640))


def stamp(image: np.ndarray, number: int) -> np.ndarray:
    """Write ``number`` as BITS black/white cells along the top edge."""
    coded = image.copy()
    for bit in range(BITS):
        coded[0:CELL, bit * CELL:(bit + 1) * CELL] = 255 if (number >> bit) & 1 else 0
    return coded


def read_code(image: np.ndarray) -> int:
    return sum(1 << bit for bit in range(BITS)
               if image[6:CELL - 6, bit * CELL + 6:(bit + 1) * CELL - 6].mean() > 127)


def require_tool(name: str, package: str, why: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    fail_or_skip(f"{name} not found: apt-get install {package} ({why})")


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return require_tool("ffmpeg", "ffmpeg", "it encodes the test videos and feeds the RTSP server")


def write_video(ffmpeg: str, path: Path, count: int, fps: int = FPS, *extra: str) -> Path:
    """H.264 video of ``count`` coded bus frames, encoded by ffmpeg from raw frames on stdin."""
    base = base_image()
    height, width = base.shape[:2]
    encoder = subprocess.Popen([ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
                                "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", "-c:v", "libx264",
                                "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", *extra, str(path)],
                               stdin=subprocess.PIPE)
    for number in range(count):
        encoder.stdin.write(stamp(base, number).tobytes())
    encoder.stdin.close()
    assert encoder.wait(60) == 0, "ffmpeg could not encode the test video"
    return path


@pytest.fixture(scope="session")
def long_video(ffmpeg, tmp_path_factory) -> Path:
    """40 s at 10 fps, GOP of 50 with B-frames: the kind of file seeking gets wrong when it is inexact."""
    return write_video(ffmpeg, tmp_path_factory.mktemp("video") / "long.mp4", 400, FPS, "-g", "50")


@pytest.fixture(scope="session")
def short_video(ffmpeg, tmp_path_factory) -> Path:
    return write_video(ffmpeg, tmp_path_factory.mktemp("video") / "short.mp4", 30)


def camera(source: str | Path, interval: float, camera_id: str = "cam-test") -> Camera:
    return Camera(id=camera_id, name="test camera", source=str(source), location=Location(lat=30.0, lon=104.0),
                  grid="G01", sample_interval_s=interval)


class StatusLog:
    """Collects on_status calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool, str]] = []

    def __call__(self, camera_id: str, online: bool, reason: str) -> None:
        self.calls.append((camera_id, online, reason))

    @property
    def states(self) -> list[bool]:
        return [online for _, online, _ in self.calls]

    def wait_for(self, states: list[bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.states[:len(states)] == states:
                return True
            time.sleep(0.05)
        return False


def take_all(reader: CameraReader, timeout: float = 30.0) -> list[Frame]:
    """Take frames as they come until a finite source has ended."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = reader.latest(timeout=0.5)
        if frame is not None:
            frames.append(frame)
        elif reader.ended:  # true only once the last frame was taken
            break
    return frames


# ------------------------------------------------------------------ source strings
def test_source_kinds_and_redaction(tmp_path):
    assert source_kind("rtsp://admin:pw@10.0.0.5:554/Streaming/Channels/101") == "stream"
    assert source_kind("rtmp://live.example/app/cam") == "stream"
    assert source_kind("snapshot+http://10.0.0.5/ISAPI/Streaming/channels/1/picture") == "snapshot"
    assert source_kind("http://10.0.0.5/mjpeg") == "http"
    assert source_kind(str(tmp_path)) == "folder"
    assert source_kind(f"file://{tmp_path}") == "folder"
    assert source_kind(str(tmp_path / "clip.mp4")) == "file"
    assert redact("rtsp://admin:secret@cam/1") == "rtsp://admin:***@cam/1"
    assert redact("rtsp://cam/1") == "rtsp://cam/1"
    assert resolve_source(".cache/demo/cam-01.mp4", tmp_path) == str(tmp_path / ".cache/demo/cam-01.mp4")
    assert resolve_source("/data/cam.mp4", tmp_path) == "/data/cam.mp4"
    assert resolve_source("rtsp://10.0.0.5/1", tmp_path) == "rtsp://10.0.0.5/1"


# ------------------------------------------------------------------ offline: video time
def test_iter_file_frames_samples_every_interval_of_video_time(long_video):
    frames = list(iter_file_frames(long_video, 2.0, start_epoch=1_790_000_000.0, camera_id="cam-x"))
    assert [f.index for f in frames] == list(range(0, 400, 20))
    assert [read_code(f.image) for f in frames] == [f.index for f in frames]
    assert [f.timestamp for f in frames] == pytest.approx([1_790_000_000.0 + i / FPS for i in range(0, 400, 20)])
    assert {f.camera_id for f in frames} == {"cam-x"}
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (640, 480, 3)


def test_iter_file_frames_between_frames_and_long_gaps(long_video):
    # 0.25 s at 10 fps: the first frame at or after each target (0, 0.3, 0.5, 0.8, 1.0, ...)
    frames = list(iter_file_frames(long_video, 0.25))
    assert [f.index for f in frames[:8]] == [0, 3, 5, 8, 10, 13, 15, 18]
    assert [read_code(f.image) for f in frames[:8]] == [0, 3, 5, 8, 10, 13, 15, 18]
    assert len(frames) == 160
    # shorter than a frame: every frame once
    assert [f.index for f in iter_file_frames(long_video, 0.05)] == list(range(400))
    # 30 s = 300 frames: skipped by seeking, which must land on the exact frame despite B-frames
    frames = list(iter_file_frames(long_video, 30.0, start_epoch=100.0))
    assert [(f.index, read_code(f.image), f.timestamp) for f in frames] == [(0, 0, 100.0), (300, 300, 130.0)]


def test_iter_file_frames_names_a_missing_or_broken_file(tmp_path):
    with pytest.raises(SourceError, match="video file not found"):
        list(iter_file_frames(tmp_path / "missing.mp4", 1.0))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(SourceError, match="cannot open"):
        list(iter_file_frames(broken, 1.0))


# ------------------------------------------------------------------ live readers on files and folders
def test_file_camera_plays_at_real_time_pace_and_ends(short_video):
    statuses = StatusLog()
    reader = CameraReader(camera(short_video, 0.5), on_status=statuses).start()
    started = time.monotonic()
    try:
        frames = take_all(reader)
    finally:
        reader.stop()
    elapsed = time.monotonic() - started
    assert [f.index for f in frames] == [0, 5, 10, 15, 20, 25]
    assert [read_code(f.image) for f in frames] == [0, 5, 10, 15, 20, 25]
    assert 2.3 <= elapsed <= 6.0, f"3 s of video sampled every 0.5 s took {elapsed:.2f} s"
    gaps = np.diff([f.timestamp for f in frames])
    assert gaps == pytest.approx([0.5] * 5)
    assert abs(frames[-1].timestamp - time.time()) < 3.0, "timestamps of a live file source follow the clock"
    assert reader.ended and not reader.online
    assert statuses.calls == [("cam-test", True, "receiving frames"), ("cam-test", False, "end of file")]
    assert metrics.sample("nonsite_detector_camera_up", {"camera": "cam-test"}) == 0.0


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted(tmp_path):
    base = base_image()
    for number in range(20):
        cv2.imwrite(str(tmp_path / f"frame-{number:03d}.jpg"), stamp(base, number))
    dropped_before = metrics.sample("nonsite_detector_frames_dropped_total", {"camera": "cam-slow"})
    reader = CameraReader(camera(tmp_path, 0.05, "cam-slow")).start()
    taken: list[Frame] = []
    try:
        deadline = time.monotonic() + 20
        while not reader.ended and time.monotonic() < deadline:
            frame = reader.latest(timeout=1.0)
            if frame is not None:
                taken.append(frame)
                time.sleep(0.2)  # a pipeline four times slower than the camera
        last = reader.latest()
        if last is not None:
            taken.append(last)
    finally:
        reader.stop()
    indices = [f.index for f in taken]
    assert indices == sorted(indices) and indices[-1] == 19, "the last frame taken must be the newest"
    assert [read_code(f.image) for f in taken] == indices
    assert 2 <= len(taken) <= 10
    assert reader.frames_read == 20
    assert reader.frames_dropped == 20 - len(taken)
    assert metrics.sample("nonsite_detector_frames_dropped_total", {"camera": "cam-slow"}) - dropped_before \
        == reader.frames_dropped
    assert reader.latest() is None


def test_as_fast_as_possible_keeps_only_the_latest(long_video):
    reader = CameraReader(camera(long_video, 0.1, "cam-fast"), realtime=False).start()
    try:
        assert wait(lambda: reader.frames_read == 400, 30)
        assert not reader.ended, "ended while its last frame is still waiting to be taken"
        frame = reader.latest()
        # the reader thread marks the source ended once it has closed the file, a moment after its last frame
        assert wait(lambda: reader.ended, 5)
    finally:
        reader.stop()
    assert frame is not None and frame.index == 399 and read_code(frame.image) == 399
    assert reader.frames_read == 400 and reader.frames_dropped == 399
    assert reader.latest() is None


def test_image_folder_in_name_order_one_per_interval(tmp_path):
    base = base_image()
    for name, number in (("b-second.jpg", 2), ("a-first.png", 1), ("c-third.jpeg", 3)):
        cv2.imwrite(str(tmp_path / name), stamp(base, number))
    (tmp_path / "notes.txt").write_text("not an image")
    statuses = StatusLog()
    reader = CameraReader(camera(tmp_path, 0.2), on_status=statuses).start()
    try:
        frames = take_all(reader, timeout=10)
    finally:
        reader.stop()
    assert [read_code(f.image) for f in frames] == [1, 2, 3]
    assert [f.index for f in frames] == [0, 1, 2]
    assert np.diff([f.timestamp for f in frames]) == pytest.approx([0.2, 0.2])
    assert statuses.states == [True, False] and statuses.calls[-1][2] == "end of folder"


def test_missing_file_reports_offline_and_ends(tmp_path):
    statuses = StatusLog()
    reader = CameraReader(camera(tmp_path / "nope.mp4", 1.0), on_status=statuses).start()
    try:
        assert wait(lambda: reader.ended, 10)
    finally:
        reader.stop()
    assert statuses.calls == [("cam-test", False, f"{tmp_path / 'nope.mp4'}: video file not found")]


def wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# ------------------------------------------------------------------ HTTP: snapshot and MJPEG
class CameraHTTPServer:
    """A local HTTP camera: ``/snapshot.jpg`` (a new coded JPEG per request) and ``/mjpeg``."""

    def __init__(self, port: int = 0):
        self.requests = 0
        base = base_image()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/snapshot.jpg":
                    owner.requests += 1
                    body = cv2.imencode(".jpg", stamp(base, owner.requests))[1].tobytes()
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path == "/mjpeg":
                    self.send_response(200)
                    self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                    self.end_headers()
                    try:
                        for number in range(600):
                            body = cv2.imencode(".jpg", stamp(base, number))[1].tobytes()
                            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                             % len(body) + body + b"\r\n")
                            time.sleep(0.1)
                    except OSError:
                        pass
                else:
                    self.send_error(404)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_snapshot_camera_polls_and_reconnects_when_the_server_returns():
    server = CameraHTTPServer()
    port = server.port
    statuses = StatusLog()
    reader = CameraReader(camera(f"snapshot+http://127.0.0.1:{port}/snapshot.jpg", 0.2), on_status=statuses,
                          reconnect_initial_s=0.2, reconnect_max_s=0.5, read_timeout_s=2).start()
    try:
        first = [reader.latest(timeout=3) for _ in range(3)]
        assert all(f is not None for f in first)
        codes = [read_code(f.image) for f in first]
        assert codes == sorted(codes) and len(set(codes)) == 3, "each poll is a new snapshot"
        assert statuses.states == [True]

        server.stop()
        assert statuses.wait_for([True, False], 5), statuses.calls
        assert "snapshot request failed" in statuses.calls[1][2]
        server = CameraHTTPServer(port)
        assert statuses.wait_for([True, False, True], 10), statuses.calls
        assert reader.latest(timeout=3) is not None
        assert reader.reconnects >= 1
    finally:
        reader.stop()
        server.stop()


def test_http_source_is_decided_by_content_type():
    server = CameraHTTPServer()
    try:
        snapshot = CameraReader(camera(f"http://127.0.0.1:{server.port}/snapshot.jpg", 0.2, "cam-jpeg")).start()
        mjpeg = CameraReader(camera(f"http://127.0.0.1:{server.port}/mjpeg", 0.3, "cam-mjpeg")).start()
        try:
            assert snapshot.latest(timeout=5) is not None and server.requests >= 1
            frames = [mjpeg.latest(timeout=5) for _ in range(3)]
        finally:
            snapshot.stop()
            mjpeg.stop()
    finally:
        server.stop()
    assert all(f is not None for f in frames), "no frames from the MJPEG stream"
    codes = [read_code(f.image) for f in frames]
    assert codes == sorted(codes) and codes[-1] - codes[0] >= 3, f"MJPEG frames not sampled over time: {codes}"


# ------------------------------------------------------------------ RTSP: a real server, cut and restored
@pytest.fixture(scope="session")
def rtsp_server_binary() -> str:
    return require_tool("rtsp-server-perl", "rtsp-server-perl", "the RTSP server the stream test reads from")


@pytest.fixture(scope="session")
def rtsp_clip(ffmpeg, tmp_path_factory) -> Path:
    """10 s loop, a key frame every second and no B-frames, as IP cameras send."""
    return write_video(ffmpeg, tmp_path_factory.mktemp("rtsp") / "clip.mp4", 100, FPS,
                       "-g", "10", "-bf", "0", "-tune", "zerolatency")


class RtspStream:
    """rtsp-server-perl on free ports, fed in real time by ffmpeg looping a clip."""

    def __init__(self, server: str, ffmpeg: str, clip: Path, folder: Path):
        self.server_binary, self.ffmpeg, self.clip, self.folder = server, ffmpeg, clip, folder
        base = free_port_block(2)
        self.client_port, self.source_port = base, base + 1
        self.rtp_port = free_port_block(40)
        self.processes: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.client_port}/cam"

    def start(self) -> None:
        log = open(self.folder / "rtsp.log", "ab")
        server = subprocess.Popen([self.server_binary, "--clientport", str(self.client_port),
                                   "--serverport", str(self.source_port), "--client_listen_address", "127.0.0.1",
                                   "--source_listen_address", "127.0.0.1", "--rtp_start_port", str(self.rtp_port),
                                   "--loglevel", "2"], stdout=log, stderr=log, start_new_session=True)
        self.processes.append(server)
        assert wait(lambda: listening(server.pid, self.source_port), 10), "rtsp-server-perl did not start"
        pusher = subprocess.Popen([self.ffmpeg, "-v", "error", "-re", "-stream_loop", "-1", "-i", str(self.clip),
                                   "-c", "copy", "-f", "rtsp", f"rtsp://127.0.0.1:{self.source_port}/cam"],
                                  stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        self.processes.append(pusher)
        assert wait(lambda: udp_sockets(server.pid) >= 2, 15), f"ffmpeg did not publish; see {self.folder}/rtsp.log"
        assert wait(self.publishing, 15), f"ffmpeg did not publish to the RTSP server; see {self.folder}/rtsp.log"

    def publishing(self) -> bool:
        """Does the server describe the stream (the pusher has announced it)?"""
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.client_port), timeout=2) as connection:
                connection.sendall(f"DESCRIBE {self.url} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
                return connection.recv(200).startswith(b"RTSP/1.0 200")
        except OSError:
            return False

    def cut(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(10)
        self.processes.clear()


def test_rtsp_stream_is_read_then_cut_and_restored(rtsp_server_binary, ffmpeg, rtsp_clip, tmp_path, monkeypatch):
    # rtsp-server-perl relays RTP over UDP only; OpenCV asks for TCP unless told otherwise.
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;udp")
    stream = RtspStream(rtsp_server_binary, ffmpeg, rtsp_clip, tmp_path)
    statuses = StatusLog()
    reader: Optional[CameraReader] = None
    try:
        stream.start()
        reader = CameraReader(camera(stream.url, 0.5, "cam-rtsp"), on_status=statuses, reconnect_initial_s=0.5,
                              reconnect_max_s=2.0, open_timeout_s=5, read_timeout_s=3, decoder="opencv").start()
        frames = [reader.latest(timeout=15) for _ in range(4)]
        assert all(f is not None for f in frames), f"no frames from {stream.url}: {statuses.calls}"
        assert frames[0].image.shape == (640, 480, 3)
        codes = [read_code(f.image) for f in frames]
        assert all(0 <= c < 100 for c in codes) and len(set(codes)) >= 3, f"stream not advancing: {codes}"
        gaps = np.diff([f.timestamp for f in frames])
        assert all(0.3 <= g <= 1.5 for g in gaps), f"not sampled every 0.5 s: {gaps}"
        assert statuses.states == [True]

        stream.cut()
        assert statuses.wait_for([True, False], 15), f"the cut was not reported: {statuses.calls}"
        reader.latest()  # discard what arrived before the cut
        stream.start()
        assert statuses.wait_for([True, False, True], 30), f"no reconnect: {statuses.calls}"
        after = reader.latest(timeout=10)
        assert after is not None and after.timestamp > time.time() - 5
        assert reader.reconnects >= 1 and reader.online
        assert metrics.sample("nonsite_detector_camera_up", {"camera": "cam-rtsp"}) == 1.0
    finally:
        if reader is not None:
            reader.stop()
        stream.cut()


def test_the_detect_loop_records_each_analysed_frames_age_from_capture_to_the_end_of_its_analysis():
    from detector.live import detect_loop

    captured = time.time() - 1.5
    analysed_frames: list = []

    class OneFrameReader:
        ended = True

        def __init__(self) -> None:
            self.frames = [Frame("cam-age", np.zeros((4, 4, 3), np.uint8), captured, 0)]

        def latest(self):
            return self.frames.pop() if self.frames else None

    class Live:
        readers = {"cam-age": OneFrameReader()}

        def take_transitions(self):
            return []

    class Pipeline:
        cameras: dict = {}

        def analyse(self, frames):
            analysed_frames.extend(frames)
            time.sleep(0.2)  # the analysis: its time is in the age
            return []

        def due_statuses(self, now, known):
            return []

    count = lambda: metrics.sample("nonsite_detector_sample_age_seconds_count", {"camera": "cam-age"})  # noqa: E731
    total = lambda: metrics.sample("nonsite_detector_sample_age_seconds_sum", {"camera": "cam-age"})  # noqa: E731
    count_before, total_before = count(), total()
    detect_loop(Pipeline(), Live(), publisher=None, stop=threading.Event(), once=True)
    assert len(analysed_frames) == 1 and count() - count_before == 1
    assert 1.7 <= total() - total_before < 5.0
