"""Decoding only what is used (detector/decoding.py) and the PyAV camera reader on a real RTSP stream.

The choice of mode and the schedule are checked alone; the decoder on H.264 files made by ffmpeg from
coded frames (ultralytics' bus.jpg with the frame number drawn in, as in test_sources.py), so every
sample can be read back and every decoded frame counted; the reader on rtsp-server-perl fed by ffmpeg
looping such a clip, cut and restored by killing and restarting both.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import pytest
from pydantic import ValidationError

from detector.camera_reader import CameraReader
from detector.decoding import (DecodeCounters, KeyframeClock, SampleSchedule, StreamDecoder, choose_mode,
                               decode_as_received, open_stream)
from detector.sources import SourceError
from nonsite.config import Camera, Location
from nonsite.config.loading import field_error
from test_sources import (FPS, RtspStream, StatusLog, ffmpeg, read_code, rtsp_server_binary,  # noqa: F401
                          write_video)


# ------------------------------------------------------------------ the choice, the clock, the schedule
@pytest.mark.parametrize("due_s, next_keyframe_s, decode_now", [
    (10.5, 11.0, True),  # a frame before the next keyframe is due: decode as the frames come
    (11.0, 11.0, False), (10.99, 11.0, False),  # the keyframe itself is the nearest frame: the rest is never decoded
    (10.8, 11.0, False),  # due within a quarter of the interval (0.25 s) before it: the keyframe stands in
    (11.5, 11.0, False),  # the next sample is after the next keyframe
    (10.5, None, False),  # the keyframe interval is not known yet: decode only when due
])
def test_frames_between_keyframes_are_decoded_as_they_come_only_while_one_of_them_is_due(
        due_s, next_keyframe_s, decode_now):
    assert decode_as_received(due_s, next_keyframe_s, frame_s=0.04, wait_s=0.25) is decode_now


@pytest.mark.parametrize("interval_s, keyframe_s, mode", [
    (2.0, 1.0, "keyframes"), (2.0, 2.0, "keyframes"), (1.0, 1.001, "keyframes"),  # 29.97 fps, 30-frame GOP
    (1.0, 2.0, "from_keyframe"), (0.5, 1.0, "from_keyframe"), (1.0, 1.2, "from_keyframe"),
    (2.0, None, "from_keyframe"),  # fewer than two keyframes seen: any interval can be served
])
def test_keyframes_only_when_one_comes_every_sample_interval(interval_s, keyframe_s, mode):
    assert choose_mode(interval_s, keyframe_s) == mode


def test_keyframe_interval_is_the_longest_recent_gap():
    clock = KeyframeClock()
    clock.add(10.0)
    assert clock.interval_s is None
    for at_s in (11.0, 12.0, 14.0, 15.0):
        clock.add(at_s)
    assert clock.interval_s == 2.0
    for at_s in (16.0, 17.0, 18.0, 19.0):  # the long gap has left the window
        clock.add(at_s)
    assert clock.interval_s == 1.0
    clock.add(3.0)  # the stream's clock went back
    assert clock.interval_s is None


def test_schedule_takes_the_frame_nearest_each_due_time():
    schedule = SampleSchedule(2.0)
    assert schedule.is_due(100.0, 0.5)  # the first frame
    schedule.taken(100.0, 0.5)
    assert not schedule.is_due(101.0, 0.5)
    assert schedule.is_due(101.5, 0.5)  # a keyframe half a gap early stands for 102
    schedule.taken(101.5, 0.5)
    assert not schedule.is_due(103.4, 0.5) and schedule.is_due(103.5, 0.5)  # still due at 104: no drift
    schedule.taken(103.5, 0.5)
    schedule.taken(120.0, 0.5)  # a stall: counted again from the frame taken
    assert schedule.due_s == 122.0
    assert schedule.is_due(50.0, 0.5), "a stream whose clock went back is sampled at once"


# ------------------------------------------------------------------ the decoder on H.264 files
@pytest.fixture(scope="module")
def clips(ffmpeg, tmp_path_factory) -> dict[str, Path]:  # noqa: F811
    """20 s at 10 fps, a keyframe every second; one without B-frames (as IP cameras send), one with three."""
    folder = tmp_path_factory.mktemp("decoding")
    return {"ip": write_video(ffmpeg, folder / "gop10.mp4", 200, FPS, "-g", "10", "-bf", "0"),
            "bframes": write_video(ffmpeg, folder / "gop10-bf.mp4", 200, FPS, "-g", "10", "-bf", "3")}


def decode_file(path: Path, interval_s: float) -> tuple[list[tuple[int, float]], DecodeCounters]:
    """(frame number read from the picture, stream time) of every sample, and what it cost."""
    container = open_stream(str(path), 10, 10)
    counters = DecodeCounters()
    try:
        samples = [(read_code(s.image), s.stream_s) for s in StreamDecoder(container, interval_s, counters)
                   .samples(lambda: False)]
    finally:
        container.close()
    return samples, counters


@pytest.mark.parametrize("kind", ["ip", "bframes"])
def test_interval_of_two_keyframes_decodes_only_the_keyframes_used(clips, kind):
    samples, counters = decode_file(clips[kind], 2.0)
    assert [code for code, _ in samples] == list(range(0, 200, 20))
    assert [at_s for _, at_s in samples] == pytest.approx([n / FPS for n in range(0, 200, 20)])
    assert counters.received == 200 and counters.used == 10 and counters.mode == "keyframes"
    # the first samples come before two keyframes have shown the interval; with B-frames the decoder then
    # holds the keyframe back for the frames after it
    assert counters.decoded == (10 if kind == "ip" else 12)


def test_interval_shorter_than_the_keyframes_decodes_from_the_keyframe_up_to_the_frame_due(clips):
    samples, counters = decode_file(clips["ip"], 0.5)
    assert [code for code, _ in samples] == list(range(0, 200, 5))
    assert counters.mode == "from_keyframe" and counters.used == 40
    # frames 0-5 of each group of 10: 6 decoded, 4 never; decode-every-frame would decode 200
    assert counters.decoded == 20 * 6


def test_between_keyframes_each_frame_is_decoded_as_it_comes_until_the_last_one_sampled(clips):
    container = open_stream(str(clips["ip"]), 10, 10)
    decoder = StreamDecoder(container, 0.5)
    decoded, taken = [], []
    try:
        for packet in container.demux(decoder.stream):
            if packet.size == 0:
                break
            before = decoder.counters.decoded
            sample = decoder.offer(packet, time.time())
            decoded.append(decoder.counters.decoded - before)
            if sample is not None:
                taken.append(sample.index)
    finally:
        container.close()
    assert taken[:6] == [0, 5, 10, 15, 20, 25]
    # before two keyframes show their interval: frames 1-5 decoded only when frame 5 is due
    assert decoded[:10] == [1, 0, 0, 0, 0, 5, 0, 0, 0, 0]
    # then each frame as it comes, so the sample is ready when due, and none after the last one sampled
    assert decoded[10:30] == [1, 1, 1, 1, 1, 1, 0, 0, 0, 0] * 2


def test_a_keyframe_just_after_the_due_time_stands_in_for_the_frames_before_it(clips):
    samples, counters = decode_file(clips["ip"], 0.9)
    codes = [code for code, _ in samples]
    # 1.8 s is due 0.2 s before the keyframe at 2 s (within a quarter of the interval): the keyframe is taken
    # and frames 11-18 are never decoded; 2.7 s is 0.3 s before the next: frames 21-27 are
    assert codes[:5] == [0, 9, 20, 27, 36]
    assert len(codes) == 22, "the schedule keeps one sample every 0.9 s on average"
    assert counters.decoded == 84 and counters.used == 22


def test_reordered_frames_come_out_in_time_with_b_frames(clips):
    samples, counters = decode_file(clips["bframes"], 0.5)
    codes = [code for code, _ in samples]
    assert codes == [round(at_s * FPS) for _, at_s in samples], "the picture is the frame of its time"
    assert codes == list(range(0, 200, 5))
    # frames shown after the one due are decoded before it: more than without B-frames, still not all
    assert counters.decoded < counters.received == 200


def test_a_broken_file_or_url_is_one_line_without_the_password(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(SourceError, match="cannot open .*broken.mp4 with FFmpeg"):
        open_stream(str(broken), 5, 5)
    with pytest.raises(SourceError) as caught:
        open_stream("rtsp://admin:secret@127.0.0.1:1/main", 2, 2)
    assert "secret" not in str(caught.value) and "admin:***@" in str(caught.value)


# ------------------------------------------------------------------ the substream in the configuration
def city_camera(source: str, substream_url: Optional[str] = None, interval_s: float = 1.0,
                camera_id: str = "cam-av") -> Camera:
    return Camera(id=camera_id, name="test camera", source=source, substream_url=substream_url,
                  location=Location(lat=30.0, lon=104.0), grid="G01", sample_interval_s=interval_s)


def test_substream_url_must_be_another_live_stream():
    camera = city_camera("rtsp://cam/main", "rtsp://cam/sub")
    assert camera.substream_url == "rtsp://cam/sub"
    with pytest.raises(ValidationError, match="must be a live stream URL"):
        city_camera("rtsp://cam/main", "/videos/sub.mp4")
    with pytest.raises(ValidationError, match="must be a live stream URL") as caught:
        city_camera("rtsp://cam/main", "snapshot+http://admin:secret@cam/picture")
    shown = field_error(caught.value)  # the one line the configuration loader prints
    assert shown.startswith("substream_url: must be a live stream URL") and "secret" not in shown
    with pytest.raises(ValidationError, match="is the same as source"):
        city_camera("rtsp://cam/main", "rtsp://cam/main")


# ------------------------------------------------------------------ the reader on a real RTSP stream
@pytest.fixture(scope="module")
def rtsp_clip_gop5(ffmpeg, tmp_path_factory) -> Path:  # noqa: F811
    """10 s loop at 10 fps, a keyframe every 0.5 s, no B-frames."""
    return write_video(ffmpeg, tmp_path_factory.mktemp("rtsp-gop") / "clip.mp4", 100, FPS,
                       "-g", "5", "-bf", "0", "-tune", "zerolatency")


@pytest.fixture
def rtsp_stream(rtsp_server_binary, ffmpeg, rtsp_clip_gop5, tmp_path):  # noqa: F811
    stream = RtspStream(rtsp_server_binary, ffmpeg, rtsp_clip_gop5, tmp_path)
    stream.start()
    yield stream
    stream.cut()


def pyav_reader(camera: Camera, statuses: Optional[StatusLog] = None) -> CameraReader:
    # rtsp-server-perl relays RTP over UDP only
    return CameraReader(camera, on_status=statuses, reconnect_initial_s=0.5, reconnect_max_s=2.0, open_timeout_s=5,
                        read_timeout_s=3, decoder="pyav", rtsp_transport="udp").start()


@pytest.mark.slow
def test_rtsp_reader_samples_keyframes_only_and_keeps_the_latest(rtsp_stream):
    reader = pyav_reader(city_camera(rtsp_stream.url, interval_s=1.0))
    try:
        frames = [reader.latest(timeout=15) for _ in range(5)]
        assert all(f is not None for f in frames), "no frames from the stream"
        time.sleep(3.5)  # a pipeline that did not look for 3.5 s gets the newest frame, the others are dropped
        newest = reader.latest()
        counters = reader.decoding
    finally:
        reader.stop()
    codes = [read_code(f.image) for f in frames]
    assert all(code % 5 == 0 for code in codes), f"not keyframes only: {codes}"
    steps = [(b - a) % 100 for a, b in zip(codes[1:], codes[2:])]  # the first two come before the interval is known
    assert steps == [10, 10, 10], f"not one sample per second of the stream: {codes}"
    assert newest is not None and time.time() - newest.timestamp < 2.5
    assert reader.frames_dropped >= 2
    assert counters.mode == "keyframes"
    assert counters.decoded <= counters.used + 2, counters
    assert counters.received >= 8 * counters.decoded, f"decoded {counters.decoded} of {counters.received} frames"


@pytest.mark.slow
def test_rtsp_reader_prefers_the_substream(rtsp_stream):
    statuses = StatusLog()
    # the main stream's address answers nothing: frames can only come from the substream
    reader = pyav_reader(city_camera("rtsp://127.0.0.1:9/main", rtsp_stream.url, 1.0), statuses)
    try:
        frame = reader.latest(timeout=15)
    finally:
        reader.stop()
    assert frame is not None and frame.image.shape == (640, 480, 3)
    assert statuses.wait_for([True], 5) and statuses.calls == [("cam-av", True, "receiving frames")]


@pytest.mark.slow
def test_rtsp_reader_reconnects_after_the_server_restarts(rtsp_stream):
    statuses = StatusLog()
    reader = pyav_reader(city_camera(rtsp_stream.url, interval_s=0.5, camera_id="cam-av-cut"), statuses)
    try:
        assert reader.latest(timeout=15) is not None, f"no frames: {statuses.calls}"
        assert statuses.wait_for([True], 5) and len(statuses.calls) == 1
        rtsp_stream.cut()
        assert statuses.wait_for([True, False], 15), f"the cut was not reported: {statuses.calls}"
        assert statuses.calls[1][2] == "stream ended or read timed out"
        reader.latest()  # what arrived before the cut
        rtsp_stream.start()
        assert statuses.wait_for([True, False, True], 30), f"no reconnect: {statuses.calls}"
        after = reader.latest(timeout=10)
        assert after is not None and after.timestamp > time.time() - 5
        assert reader.reconnects >= 1 and reader.online
    finally:
        reader.stop()
