"""Figures and the printed table of ``bench/city_bench.py``: one round's result -> :func:`summary`, all rounds
-> :func:`report` (the table, the ratio against decode-every-frame, the largest count kept up and its limit).

Example::

    >>> figures = summary(result)          # doctest: +SKIP  (a round of city_bench.run_round)
    >>> figures["age p95 s"], figures["frames analysed /s"]  # doctest: +SKIP
    (0.62, 6.0)
"""
from __future__ import annotations

import math

from city_probe import Series, by_label, quantile, total

AGE = "nonsite_detector_sample_age_seconds"
PIPELINE_SATURATED = 0.85  # CPU seconds per second of the detector's one pipeline thread: it is the limit
CORES = 2


def series_of(result: dict) -> Series:
    return {(name, tuple(sorted(labels.items()))): value for name, labels, value in result["metrics"]}


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def summary(result: dict, max_age: float = 2.0) -> dict[str, float]:
    """The figures of one round (per second: over the measured window); kept up: p95 age <= ``max_age``."""
    series, seconds, n = series_of(result), result["seconds"], result["cameras"]
    cpu = result["cpu_per_s"]
    analysed = total(series, f"{AGE}_count")
    inferred = total(series, "nonsite_detector_frames_inferred_total")
    model_s = total(series, "nonsite_detector_inference_seconds_sum")
    calls = total(series, "nonsite_detector_inference_seconds_count")
    cameras = sorted(by_label(series, f"{AGE}_count", "camera"))
    camera_p95 = {c: quantile(series, AGE, 0.95, camera=c) for c in cameras}
    up = by_label(series, "nonsite_detector_camera_up", "camera")
    kept_up = sum(1 for c, age in camera_p95.items() if age <= max_age and up.get(c, 0) >= 1)
    latencies = result["wall_latencies"]
    rss = result["rss"][-1][1] / 2**20 if result["rss"] else float("nan")
    growth = result["rss_growth"]
    renders = total(series, "nonsite_detector_evidence_render_seconds_count")  # none before the evidence stage
    return {
        "cameras": n, "seconds": seconds,
        "frames analysed /s": analysed / seconds, "needed /s": n / result["interval"],
        "through the model /s": inferred / seconds,
        "frames sampled /s": total(series, "nonsite_detector_frames_read_total") / seconds,
        "frames dropped": total(series, "nonsite_detector_frames_dropped_total"),
        "violation starts /min": 60 * total(series, "nonsite_detector_violations_total", kind="start") / seconds,
        "age p50 s": quantile(series, AGE, 0.5), "age p95 s": quantile(series, AGE, 0.95),
        "worst camera p95 s": max(camera_p95.values(), default=float("nan")),
        "cameras kept up": kept_up, "cameras online": sum(1 for v in up.values() if v >= 1),
        "wall cases": len(latencies), "frame->wall p50 s": percentile(latencies, 0.5),
        "frame->wall p95 s": percentile(latencies, 0.95),
        "  frame->Kafka p50 s": percentile(result["publish_latencies"], 0.5),
        "  frame->Kafka p95 s": percentile(result["publish_latencies"], 0.95),
        "evidence renders": renders,
        "  render s (mean)": total(series, "nonsite_detector_evidence_render_seconds_sum") / renders
        if renders else math.nan,
        "  pipeline waited s/s": total(series, "nonsite_detector_evidence_backpressure_seconds_total") / seconds,
        "detect CPU s/s": cpu.get("detect", 0.0), "CPU per camera-s": cpu.get("detect", 0.0) / n,
        "  pipeline thread s/s": result["detect_main_per_s"], "  other threads s/s": result["detect_other_per_s"],
        "  model s/s": model_s / seconds, "  model ms per frame": 1000 * model_s / inferred if inferred else math.nan,
        "  frames per model call": inferred / calls if calls else math.nan,
        "  pipeline CPU ms a frame": 1000 * result["detect_main_per_s"] * seconds / analysed if analysed else math.nan,
        "  other CPU ms a camera-s": 1000 * result["detect_other_per_s"] / n,
        "worker CPU s/s": cpu.get("worker", 0.0), "web CPU s/s": cpu.get("web", 0.0),
        "kafka CPU s/s": cpu.get("kafka", 0.0), "RTSP farm CPU s/s": cpu.get("farm", 0.0),
        "machine busy s/s": result["machine_busy_per_s"],
        "  other work s/s": result["machine_busy_per_s"] - sum(cpu.values()),
        "detect RSS MB": rss, "RSS MB / cameras": rss / n,
        "RSS growth MB": growth["growth MB"], "reconnects": total(series, "nonsite_detector_camera_reconnects_total"),
        "detect SIGTERM exit s": result["detect_stop_s"] if result["detect_stop_s"] is not None else math.nan,
    }


def limit(figures: dict[str, float]) -> str:
    """What held the round back, from its own measurements."""
    pipeline = figures["  pipeline thread s/s"]
    parts = (f"detector pipeline thread {pipeline:.2f} s/s (model {figures['  model s/s']:.2f} s/s, "
             f"{figures['  model ms per frame']:.0f} ms a frame, {figures['through the model /s']:.1f} frames/s), "
             f"reading/decoding and other detector threads {figures['  other threads s/s']:.2f} s/s, "
             f"RTSP farm {figures['RTSP farm CPU s/s']:.2f}, worker {figures['worker CPU s/s']:.2f}, web "
             f"{figures['web CPU s/s']:.2f}, Kafka {figures['kafka CPU s/s']:.2f}; machine busy "
             f"{figures['machine busy s/s']:.2f} of {CORES} cores")
    parts += (f"; {figures['violation starts /min']:.1f} violation starts a minute, each drawing and masking its "
              f"evidence (about 1-2 s of CPU at 540p-1080p: docs/privacy.md) on the evidence stage's thread, "
              f"the pipeline waiting for it {figures['  pipeline waited s/s']:.2f} s/s")
    per_frame, per_camera = figures["  pipeline CPU ms a frame"] / 1000, figures["  other CPU ms a camera-s"] / 1000
    if per_frame > 0:
        parts += (f". By these CPU costs one pipeline core carries {figures['needed /s'] / figures['cameras']:.2f} "
                  f"frames/s per camera for {1 / per_frame / (figures['needed /s'] / figures['cameras']):.0f} cameras, "
                  f"and 150 cameras need {150 * figures['needed /s'] / figures['cameras'] * per_frame:.2f} s/s of "
                  f"pipeline and {150 * per_camera:.2f} s/s of reading")
    if pipeline >= PIPELINE_SATURATED:
        return f"the detector's one pipeline thread (a core): {parts}"
    if figures["machine busy s/s"] >= CORES * 0.9:
        return f"the machine's {CORES} cores: {parts}"
    return f"no resource saturated: {parts}"


def round_line(figures: dict[str, float]) -> str:
    return (f"{figures['cameras']:.0f} cameras: {figures['frames analysed /s']:.1f} frames analysed/s of "
            f"{figures['needed /s']:.1f}, sample age p50/p95 {figures['age p50 s']:.2f}/{figures['age p95 s']:.2f} s, "
            f"kept up {figures['cameras kept up']:.0f}, frame->wall p95 {figures['frame->wall p95 s']:.2f} s "
            f"({figures['wall cases']:.0f} cases), detect CPU {figures['detect CPU s/s']:.2f} s/s, "
            f"RSS {figures['detect RSS MB']:.0f} MB")


def report(results: list[dict], max_age: float) -> None:
    if not results:
        return
    rows = [(f"{r['cameras']} {r['decoder']}", summary(r, max_age)) for r in results]
    print(f"\n{'':26}" + "".join(f"{name:>14}" for name, _ in rows))
    for key in rows[0][1]:
        print(f"{key:26}" + "".join(f"{figures[key]:>14.4g}" for _, figures in rows))
    for result in results:
        print(f"{result['cameras']} {result['decoder']}: {result['seconds']} s from {result['started_at']}, load "
              f"average {result['load'][:3]} before, {result['load'][3]} after"
              + (f"; wall stream: {result['wall_error']}" if result["wall_error"] else ""))
    by_count: dict[int, dict[str, dict]] = {}
    for (_, figures), result in zip(rows, results):
        by_count.setdefault(result["cameras"], {})[result["decoder"]] = figures
    for n, designs in by_count.items():
        if "pyav" in designs and "opencv" in designs:
            a, b = designs["opencv"], designs["pyav"]
            print(f"\nratio at {n} cameras, opencv (every frame) / pyav: CPU per camera-second "
                  f"{a['CPU per camera-s'] / b['CPU per camera-s']:.2f}x, sample age p95 "
                  f"{a['age p95 s']:.2f} / {b['age p95 s']:.2f} s, cameras kept up {a['cameras kept up']:.0f} / "
                  f"{b['cameras kept up']:.0f}, RSS {a['detect RSS MB']:.0f} / {b['detect RSS MB']:.0f} MB")
    pyav = [(r["cameras"], f) for (_, f), r in zip(rows, results) if r["decoder"] == "pyav"]
    within = [n for n, f in pyav if f["age p95 s"] <= max_age]
    print(f"\nlargest count with p95 sample age <= {max_age:g} s: {max(within) if within else 'none'} "
          f"(of {', '.join(str(n) for n, _ in pyav)})")
    if len(pyav) >= 2:
        (n1, f1), (n2, f2) = pyav[0], pyav[-1]
        print(f"RSS per added camera ({n1} -> {n2}): {(f2['detect RSS MB'] - f1['detect RSS MB']) / (n2 - n1):.1f} MB")
    for n, figures in pyav:
        if figures["age p95 s"] > max_age or n == pyav[-1][0]:
            print(f"at {n} cameras: {limit(figures)}")
