"""A live city on this machine: RTSP cameras -> ``nonsite detect`` -> Kafka -> ``nonsite worker`` -> ``nonsite web``.

Per round (a camera count and a decoder): ``--cameras`` RTSP streams served locally (``bench/rtsp_farm.py``:
rtsp-server-perl fed by ``ffmpeg -re -stream_loop -1 -c copy`` from real CCTV clips of ``NONSITE_MEDIA``,
re-encoded once: the Beijing intersection at 960x540 30 fps with a keyframe every second and the pedestrian
street at 1920x1080 30 fps with a keyframe every 2 s, in turn); a fresh copy of ``configs/`` naming them, each
camera sampled every ``--interval`` s, every ``--zoned-every``-th with four ``sidewalk`` zones (the quarters of
the frame). Cars waiting at the looped intersection stand in them: about one start every 20 s per zoned
intersection camera with a 60 s dwell, each about 1 s of evidence CPU, so zoning every camera measures the
evidence rather than the scale. The ``sidewalk_parking`` dwell is ``--dwell``, so cases are filed within a
short run. The real worker, web app and ``nonsite detect`` (the real model, ``$NONSITE_WEIGHTS``, and the
whole pipeline) run each in its own process, on a local Kafka (or ``NONSITE_KAFKA_BOOTSTRAP``). After
``--warmup`` s the round measures for ``--duration`` s:

* camera-frames analysed per second, frames through the model, frames dropped (a newer one came first);
* sample age: a frame's capture stamp to the end of its analysis (``nonsite_detector_sample_age_seconds``),
  p50 / p95 over all cameras, the worst camera's p95, and the cameras kept up (p95 <= 2 s and online);
* frame -> wall: a client of the wall's live stream notes when each new case arrives, less the capture time
  of the frame that filed it (the case's ``last_seen``): the dwell is not in it (``bench/city_probe.py``);
* CPU seconds per second of each process (detector: its pipeline thread and its other threads apart; worker;
  web; Kafka; the RTSP farm), the model's time per frame, RSS of the detector in total and per camera, and its
  growth, first against last 10 minutes (a third of the run when shorter): the soak.

The decode-every-frame design (``detector.decoder: opencv``) runs on the same streams after the PyAV round at
the ``--baseline-at`` counts, for ``--baseline-duration`` s, and the ratio is printed. With ``--ramp`` the
rounds stop after the first count whose p95 sample age exceeds ``--max-age``; the largest count within it is
reported with what limited the next one.

Usage (a small round; the 60-minute soak and the ramp are in docs/cameras.md, "Live load test")::

    NONSITE_WEIGHTS=../shared/models/yolov8n_int8.tflite NONSITE_MEDIA=../shared/media \\
        .venv/bin/python bench/city_bench.py --cameras 8 --duration 120 --baseline-duration 60
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "bench"))

from city_probe import DetectionsListener, ProcessSampler, WallListener, delta, rss_growth, scrape  # noqa: E402
from city_report import report, round_line, summary  # noqa: E402
from city_stack import CityStack, city_config, start_kafka  # noqa: E402
from decode_bench import CLIPS  # noqa: E402
from rtsp_farm import RtspFarm, prepare_clips  # noqa: E402


def run_round(n: int, decoder: str, urls: list[str], farm: RtspFarm, args: argparse.Namespace, bootstrap: str,
              kafka_pids: list[int], work: Path, duration_s: float) -> dict:
    """One city of ``n`` cameras with ``decoder``: started, warmed up, measured for ``duration_s``, stopped."""
    tag = f"cb{uuid.uuid4().hex[:6]}-{n}-{decoder}"
    folder = work / tag
    folder.mkdir(parents=True)
    configs = city_config(folder, urls[:n], tag, decoder, args.interval, args.dwell, bootstrap, args.zoned_every)
    farm_pids = [p.pid for p in farm.servers + farm.pushers]
    with CityStack(configs, bootstrap, folder) as stack:
        wall = WallListener(f"http://127.0.0.1:{stack.web_port}").start()
        published = DetectionsListener(bootstrap, f"{tag}.detections").start()
        detect = stack.start_detect()
        started = time.monotonic()
        _watch(stack, detect, started + args.warmup, None, args.rss_every)
        pids = {"detect": [detect.pid], "worker": [stack.processes["worker"].pid],
                "web": [stack.processes["web"].pid], "kafka": kafka_pids, "farm": farm_pids}
        load_before = os.getloadavg()
        before, window_start = scrape(stack.metrics_port), time.time()
        sampler = ProcessSampler(pids, detect.pid)
        machine_before = _machine_busy()
        late: list[tuple[float, float, float]] = []  # (s into the window, frames analysed, of them late) so far
        _watch(stack, detect, time.monotonic() + duration_s, sampler, args.rss_every, late)
        window = sampler.window()
        machine = (_machine_busy() - machine_before) / window["seconds"]
        after = scrape(stack.metrics_port)
        load_after = os.getloadavg()
        wall.stop()
        published.stop()
        stop_s = stack.stop_process("detect")
    return {"cameras": n, "decoder": decoder, "tag": tag, "interval": args.interval,
            "seconds": round(window["seconds"], 1),
            "metrics": [[name, dict(labels), value] for (name, labels), value in delta(after, before).items()
                        if name.startswith("nonsite_detector_")],
            "cpu_per_s": window["cpu_per_s"], "detect_main_per_s": window["detect_main_per_s"],
            "detect_other_per_s": window["detect_other_per_s"], "machine_busy_per_s": machine,
            "wall_latencies": wall.since(window_start),
            "publish_latencies": published.since(window_start), "wall_cases_all": len(wall.cases),
            "wall_error": wall.error,
            "rss": sampler.rss, "late_frames": late, "rss_growth": rss_growth(sampler.rss), "detect_stop_s": stop_s,
            "load": [round(v, 2) for v in load_before] + [round(load_after[0], 2)],
            "started_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(window_start))}


def _watch(stack: CityStack, detect, until: float, sampler, every_s: float, late: list | None = None) -> None:
    """Until ``until``: the detector still running; with a sampler, its RSS and its frames analysed and late
    (sample age over 2 s) so far, every ``every_s``."""
    late = late if late is not None else []
    while time.monotonic() < until:
        if detect.poll() is not None:
            raise SystemExit(f"nonsite detect exited with code {detect.returncode}:\n{stack.log_tail('detect')}")
        if sampler is not None:
            sampler.sample_rss()
            late.append(_late_frames(stack.metrics_port, sampler))
        time.sleep(max(0.1, min(every_s, until - time.monotonic())))
    if sampler is not None:
        sampler.sample_rss()


def _late_frames(port: int, sampler: ProcessSampler) -> tuple[float, float, float]:
    from city_probe import buckets

    counts = dict(buckets(scrape(port), "nonsite_detector_sample_age_seconds"))
    return sampler.rss[-1][0], counts.get(float("inf"), 0.0), counts.get(float("inf"), 0.0) - counts.get(2.0, 0.0)


def _machine_busy() -> float:
    import psutil

    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def run_counts(args: argparse.Namespace, counts: list[int], work: Path, bootstrap: str,
               kafka_pids: list[int]) -> list[dict]:
    clips = [c for c in CLIPS if c.label in args.clips.split(",")]
    if not clips:
        raise SystemExit(f"--clips: none of {args.clips!r} is one of {', '.join(c.label for c in CLIPS)}")
    prepared = prepare_clips(args.media, work, clips)
    baseline_at = counts[:1] if args.baseline_at is None else [int(c) for c in args.baseline_at.split(",") if c]
    baseline_s = args.baseline_duration if args.baseline_duration is not None else min(args.duration, 300.0)
    results: list[dict] = []
    for n in counts:
        with RtspFarm(prepared, n, args.per_server, work) as farm:
            print(f"{n} streams ({', '.join(c.label for c in clips)} in turn) served by {len(farm.servers)} "
                  f"rtsp-server-perl processes; every camera sampled every {args.interval:g} s", flush=True)
            designs = [("pyav", args.duration)] + ([("opencv", baseline_s)] if n in baseline_at and baseline_s else [])
            for decoder, seconds in designs:
                print(f"  {decoder}: {n} cameras, warm-up {args.warmup:.0f} s, measured {seconds:.0f} s ...",
                      flush=True)
                result = run_round(n, decoder, farm.urls, farm, args, bootstrap, kafka_pids, work, seconds)
                results.append(result)
                print("  " + round_line(summary(result)), flush=True)
                if args.json:
                    with args.json.open("a", encoding="utf-8") as out:
                        out.write(json.dumps(result) + "\n")
        if args.ramp and summary(results[-len(designs)])["age p95 s"] > args.max_age:
            break
    return results


def parse_counts(text: str) -> list[int]:
    try:
        counts = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise SystemExit(f"--cameras: a number or a comma-separated list of numbers, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise SystemExit(f"--cameras: at least one camera, got {text!r}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", default="8", help="a count, or counts in turn (25,50,100,150)")
    parser.add_argument("--ramp", action="store_true", help="stop after the first count past --max-age")
    parser.add_argument("--max-age", type=float, default=2.0, help="the p95 sample age a count must keep (s)")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds measured per round (after warm-up)")
    parser.add_argument("--baseline-duration", type=float, default=None,
                        help="seconds the decode-every-frame round measures (default: the duration, at most 300; "
                             "0: none)")
    parser.add_argument("--baseline-at", default=None, help="counts the baseline runs at (default: the first)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds from the detector's start to measuring")
    parser.add_argument("--interval", type=float, default=2.0, help="each camera's sample interval")
    parser.add_argument("--dwell", type=float, default=60.0, help="sidewalk_parking's dwell in the bench's config")
    parser.add_argument("--zoned-every", type=int, default=6,
                        help="every k-th camera has sidewalk zones (k even: the 540p intersection, where cars stop)")
    parser.add_argument("--clips", default="540p,1080p", help="which clips the streams take in turn")
    parser.add_argument("--per-server", type=int, default=10, help="streams per rtsp-server-perl process")
    parser.add_argument("--rss-every", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--media", type=Path,
                        default=Path(os.environ.get("NONSITE_MEDIA", PROJECT.parent / "shared" / "media")))
    parser.add_argument("--work-dir", type=Path, default=None, help="clips, configs and logs (kept if given)")
    parser.add_argument("--json", type=Path, default=None, help="append one JSON line per round here")
    args = parser.parse_args(argv)
    counts = parse_counts(args.cameras)
    if not os.environ.get("NONSITE_WEIGHTS"):
        raise SystemExit("NONSITE_WEIGHTS: not set (the detector's model, e.g. ../shared/models/yolov8n_int8.tflite)")
    with tempfile.TemporaryDirectory(prefix="city-bench-") as temporary:
        work = (args.work_dir or Path(temporary)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        bootstrap, cluster = start_kafka(work)
        try:
            kafka_pids = list(cluster.running_pids().values()) if cluster is not None else []
            results = run_counts(args, counts, work, bootstrap, kafka_pids)
        finally:
            if cluster is not None:
                cluster.stop()
    report(results, args.max_age)
    return 0


if __name__ == "__main__":
    sys.exit(main())
