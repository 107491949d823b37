"""Many live RTSP streams on this machine: rtsp-server-perl processes fed by ``ffmpeg -re -stream_loop -1 -c copy``.

Clips are re-encoded once as IP cameras send them (H.264, no B-frames, a keyframe every ``gop_s``);
the streams themselves copy the clip without encoding.  Used by ``bench/decode_bench.py``.

Example::

    >>> clips = prepare_clips(Path("../shared/media"), Path("/tmp/f"), [Clip("a.mp4", "540p", 1.0)])  # doctest: +SKIP
    >>> with RtspFarm(clips, cameras=20, per_server=10, folder=Path("/tmp/f")) as farm:     # doctest: +SKIP
    ...     print(farm.urls[0])                                                             # doctest: +SKIP
    rtsp://127.0.0.1:41000/cam000
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
import psutil

from nonsite.devtools.rtsp_server import listening, udp_sockets

# rtsp-server-perl hands out RTP ports in order, 2 for each stream's source and 2 more for every client
# session (every reconnect too), never reusing one.  FFmpeg's own RTP ports (pushers, readers) are drawn
# at random from 5000-65000, so the servers' blocks lie below that, where nothing else draws from.
SERVER_PORTS = (1100, 5000)
SESSIONS_PER_STREAM = 10


@dataclass(frozen=True)
class Clip:
    name: str  # a file of the media folder
    label: str  # what it is, for the report (540p, 1080p)
    gop_s: float  # seconds between keyframes once re-encoded


@dataclass(frozen=True)
class PreparedClip:
    clip: Clip
    path: Path


def prepare_clips(media: Path, folder: Path, clips: tuple[Clip, ...] | list[Clip]) -> list[PreparedClip]:
    """Each clip re-encoded into ``folder`` (H.264, no B-frames, no audio, a keyframe every ``gop_s``); kept
    there, so a second run with the same folder encodes nothing."""
    ffmpeg = _tool("ffmpeg", "ffmpeg")
    folder.mkdir(parents=True, exist_ok=True)
    prepared = []
    for clip in clips:
        source = media / clip.name
        if not source.is_file():
            raise SystemExit(f"{source}: not found (set NONSITE_MEDIA to the shared media folder)")
        target = folder / f"{source.stem}.gop{clip.gop_s:g}s.mp4"
        if not target.is_file():
            gop = max(1, round(_frame_rate(source) * clip.gop_s))
            subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(source), "-an", "-c:v", "libx264", "-preset",
                            "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-bf", "0",
                            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", str(target)],
                           check=True, timeout=600)
        prepared.append(PreparedClip(clip, target))
    return prepared


class Running:
    """A context manager over ``start()`` and ``stop()``: stopped again when the start fails half-way."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self):  # -> the subclass
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class RtspFarm(Running):
    """``cameras`` streams, clips taken in turn, ``per_server`` to an rtsp-server-perl process."""

    def __init__(self, clips: list[PreparedClip], cameras: int, per_server: int, folder: Path):
        self.clips, self.cameras, self.per_server, self.folder = clips, cameras, max(1, per_server), folder
        self.servers: list[subprocess.Popen] = []
        self.pushers: list[subprocess.Popen] = []
        self.urls: list[str] = []
        self._log = None
        self._next_port = SERVER_PORTS[0]  # blocks handed out only go up: none overlap

    def start(self) -> None:
        server_binary, ffmpeg = _tool("rtsp-server-perl", "rtsp-server-perl"), _tool("ffmpeg", "ffmpeg")
        self._log = open(self.folder / "farm.log", "ab")
        for first in range(0, self.cameras, self.per_server):
            count = min(self.per_server, self.cameras - first)
            client_port = self._ports(2)
            source_port = client_port + 1
            rtp_port = self._ports(2 * count * (1 + SESSIONS_PER_STREAM))
            self.servers.append(subprocess.Popen(
                [server_binary, "--clientport", str(client_port), "--serverport", str(source_port),
                 "--client_listen_address", "127.0.0.1", "--source_listen_address", "127.0.0.1",
                 "--rtp_start_port", str(rtp_port), "--loglevel", "1"],
                stdout=self._log, stderr=self._log, start_new_session=True))
            server = self.servers[-1]
            if not _wait(lambda: listening(server.pid, source_port), 15):
                raise SystemExit(f"rtsp-server-perl did not start; see {self.folder}/farm.log")
            for number in range(first, first + count):
                clip = self.clips[number % len(self.clips)]
                self.pushers.append(subprocess.Popen(
                    [ffmpeg, "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clip.path), "-c", "copy",
                     "-f", "rtsp", f"rtsp://127.0.0.1:{source_port}/cam{number:03d}"],
                    stdout=self._log, stderr=self._log, stdin=subprocess.DEVNULL, start_new_session=True))
                self.urls.append(f"rtsp://127.0.0.1:{client_port}/cam{number:03d}")
            # every stream announced (two RTP sockets each) before anything connects to ask (see _listening)
            if not _wait(lambda: udp_sockets(server.pid) >= 2 * count, 60):
                raise SystemExit(f"the streams were not announced to rtsp-server-perl; see {self.folder}/farm.log")
        for url in self.urls:
            if not _wait(lambda: _describes(url), 30):
                raise SystemExit(f"{url} is not published; see {self.folder}/farm.log")

    def _ports(self, span: int) -> int:
        for base in range(self._next_port, SERVER_PORTS[1] - span):
            if all(_bindable(base + i) for i in range(span)):
                self._next_port = base + span
                return base
        raise SystemExit(f"no free block of {span} ports in {SERVER_PORTS[0]}-{SERVER_PORTS[1]}: "
                         f"fewer streams per server (--per-server) need fewer")

    def cpu_seconds(self) -> float:
        """CPU the serving side (servers and pushers) has used so far."""
        total = 0.0
        for process in self.servers + self.pushers:
            try:
                times = psutil.Process(process.pid).cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self) -> None:
        for process in self.pushers + self.servers:
            if process.poll() is None:
                process.terminate()
        for process in self.pushers + self.servers:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.pushers.clear()
        self.servers.clear()
        if self._log is not None:
            self._log.close()
            self._log = None


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} not found: apt-get install {package}")
    return path


def _frame_rate(path: Path) -> float:
    probe = subprocess.run([_tool("ffprobe", "ffmpeg"), "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=r_frame_rate", "-of", "csv=p=0", str(path)],
                           capture_output=True, text=True, check=True, timeout=60)
    numerator, _, denominator = probe.stdout.strip().partition("/")
    return float(numerator) / float(denominator or 1)


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _describes(url: str) -> bool:
    """Does the server describe the stream (its pusher has announced it)?"""
    host_port = url.split("/")[2]
    host, port = host_port.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2) as connection:
            connection.sendall(f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
            return connection.recv(200).startswith(b"RTSP/1.0 200")
    except OSError:
        return False


def _wait(condition, timeout_s: float, step_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step_s)
    return condition()
