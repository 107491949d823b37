"""Detector throughput: the naive loop against the pipeline, same input, same machine, one run.

Input: ``--cameras`` simulated cameras sampled every ``--interval`` seconds of simulated time for
``--duration`` seconds, replaying real footage that is mostly static:

* most cameras hold one real photo still (``NONSITE_MEDIA`` photos, its ``vendors/`` too, and ultralytics'
  bus.jpg and zidane.jpg, at most 1280 px wide), with mild per-frame sensor noise (Gaussian, sigma 3), and one
  scene change at a random moment (a region of the photo painted out: an object leaves);
* ``--moving`` cameras replay the two real CCTV clips (a new clip frame at every sample).

Frames are decoded and built in memory before timing, so neither side pays for decoding.

(a) naive: ``model.predict(frame)`` for every frame of every camera (ultralytics defaults);
(b) pipeline: :class:`detector.pipeline.Pipeline` (motion gate with the config's re-check
    interval, batched inference where the model allows it, tracking, rules, evidence), once per
    ``--workers`` value: 1 = one model instance like the naive loop (the gain is the pipeline's
    alone), 2 = two instances in parallel threads (both cores of a 2-core machine); once per
    ``--plates`` value (``on``: with the plate stage reading the cars in the sidewalk zone, ``off``); and once
    per ``--classifiers`` value (``on``: the second look and the scene heads, loaded as the detector loads them
    from the configuration, ``NONSITE_CLASSIFIER`` / ``NONSITE_EMBEDDER`` or beside the weights; ``off``: none).

Each camera has a sidewalk zone (sidewalk_parking), a no_vending zone over the whole view (mobile_vendor's scene
head), a no_piling zone (material_piling's scene head), a no_ads zone on the upper part (illegal_ads' scene
head): three zones embedded every ``detector.scenes.interval_s``; and a storefront zone (road_occupation: its
chairs, benches and umbrellas beside a person get the second look).  The scenarios the second look judges have
their dwell cut to ``--look-dwell`` (30 s) in every run, so that their candidates reach the look, and are looked
at again every ``retry_s`` while declined, within the run: a pessimistic rate of crops.  ``--older-input`` gives
the bench's input before 7824260 (the first three zones, no vendors' photos, no dwell cut) to compare with code of
that time.

Both sides run ``--rounds`` times, interleaved, and the best time of each counts (other processes
share the machine).  Prints camera-frames/s for both, the ratio, and whether the pipeline keeps up
with 150 cameras sampled every 2 s (75 camera-frames/s).

Usage::

    NONSITE_WEIGHTS=../shared/models/yolov8n_int8.tflite NONSITE_MEDIA=../shared/media \\
        .venv/bin/python bench/detector_bench.py --cameras 20 --moving 2 --duration 120
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from nonsite.evidence import EvidenceStore  # noqa: E402
from detector.classify.loading import Classifiers  # noqa: E402
from detector.inference import Detector  # noqa: E402
from detector.pipeline import Pipeline  # noqa: E402
from detector.samples import clip_frames, paint_out  # noqa: E402
from detector.sources import Frame  # noqa: E402
from nonsite.config import Camera, load_city  # noqa: E402
from nonsite.logs import setup_logging  # noqa: E402

CLIPS = ("cctv_pedestrian_shopping_street_elevated_04.mp4", "cctv_traffic_intersection_beijing_uadetrac_01.mp4")
TARGET_CAMERAS, TARGET_INTERVAL_S = 150, 2.0
NOISE_VARIANTS = 4
EPOCH = 1_800_000_000.0


@dataclass
class SimulatedCamera:
    camera: Camera
    frames: list[np.ndarray]  # one per step (shared arrays: a still camera repeats a few)
    moving: bool


def photos(media: Path, vendors: bool = True) -> list[Path]:
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    # the vendors' photos hold a cafe terrace (umbrellas, chairs and people): candidates of the second look
    found = (sorted(media.glob("*.jpg")) + (sorted(media.glob("vendors/*.jpg")) if vendors else [])
             + sorted(assets.glob("*.jpg")))
    if not found:
        raise SystemExit(f"no photos in {media}")
    return found


def fit(image: np.ndarray, max_width: int = 1280) -> np.ndarray:
    if image.shape[1] <= max_width:
        return image
    height = round(image.shape[0] * max_width / image.shape[1])
    return cv2.resize(image, (max_width, height), interpolation=cv2.INTER_AREA)


def noisy_variants(image: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    return [np.clip(image.astype(np.int16) + rng.normal(0, 3, image.shape).astype(np.int16), 0, 255)
            .astype(np.uint8) for _ in range(NOISE_VARIANTS)]


def camera_config(camera_id: str, storefront: bool = True) -> Camera:
    whole = [[0, 0], [1, 0], [1, 1], [0, 1]]
    lower = [[0, 0.4], [1, 0.4], [1, 1], [0, 1]]
    upper = [[0, 0], [1, 0], [1, 0.4], [0, 0.4]]
    zones = [{"id": "z-walk", "kind": "sidewalk", "polygon": lower},
             {"id": "z-street", "kind": "no_vending", "polygon": whole},
             {"id": "z-corner", "kind": "no_piling", "polygon": lower}]
    if storefront:
        zones += [{"id": "z-wall", "kind": "no_ads", "polygon": upper},
                  {"id": "z-front", "kind": "storefront", "polygon": lower}]
    return Camera(id=camera_id, name=camera_id, source="bench", location={"lat": 30.65, "lon": 104.06},
                  grid="G01", sample_interval_s=TARGET_INTERVAL_S, zones=zones)


def build_cameras(media: Path, count: int, moving: int, steps: int, seed: int,
                  older_input: bool = False) -> list[SimulatedCamera]:
    rng = np.random.default_rng(seed)
    chooser = random.Random(seed)
    stills = [fit(cv2.imread(str(p))) for p in photos(media, vendors=not older_input)]
    clips = [[fit(f) for f in clip_frames(media / name, 60)] for name in CLIPS]
    cameras = []
    for index in range(count):
        camera = camera_config(f"bench-{index:03d}", storefront=not older_input)
        if index < moving:
            clip = clips[index % len(clips)]
            offset = chooser.randrange(len(clip))
            cameras.append(SimulatedCamera(camera, [clip[(offset + s) % len(clip)] for s in range(steps)], True))
            continue
        photo = stills[index % len(stills)]
        before = noisy_variants(photo, rng)
        after = noisy_variants(paint_out(photo, [(0.3, 0.3, 0.6, 0.7)]), rng)
        change = chooser.randrange(steps // 4, 3 * steps // 4)
        frames = [(before if s < change else after)[s % NOISE_VARIANTS] for s in range(steps)]
        cameras.append(SimulatedCamera(camera, frames, False))
    return cameras


def run_naive(weights: str, cameras: list[SimulatedCamera], steps: int) -> tuple[float, int]:
    from ultralytics import YOLO

    model = YOLO(weights, task="detect")
    model.predict(cameras[0].frames[0], verbose=False)  # warm-up, not timed
    started = time.perf_counter()
    count = 0
    for step in range(steps):
        for sim in cameras:
            model.predict(sim.frames[step], verbose=False)
            count += 1
    return time.perf_counter() - started, count


@dataclass
class ClassifierCost:
    """What the second look and the scene heads did in one pipeline run, and their wall-clock seconds."""

    crops: int = 0
    look_s: float = 0.0
    embeddings: int = 0
    samples: int = 0
    scene_s: float = 0.0

    @property
    def seconds(self) -> float:
        return self.look_s + self.scene_s


def classifier_cost(pipeline: Pipeline) -> ClassifierCost:
    cost = ClassifierCost()
    look = pipeline.classifiers.second_look
    if look is not None:
        cost.crops, cost.look_s = look.crops, look.seconds
    for state in pipeline.cameras.values():
        if state.scenes is not None:
            cost.embeddings += state.scenes.stats.embeddings
            cost.samples += state.scenes.stats.samples
            cost.scene_s += state.scenes.stats.seconds
    return cost


def run_pipeline(weights: str, cameras: list[SimulatedCamera], steps: int, config: Path, batch: int,
                 workers: int, plates: bool = True, classifiers: bool = True, look_dwell: float = 30.0):
    city = load_city(config)
    scenarios = [s.model_copy(update={"dwell_s": min(s.dwell_s, look_dwell)})
                 if s.second_look is not None and s.second_look.mode != "off" else s for s in city.scenarios]
    settings = city.detector.model_copy(update={"batch": batch, "workers": workers, "weights": weights,
                                                "plates": city.detector.plates.model_copy(update={"enabled": plates})})
    detector = Detector.from_settings(settings, weights)
    detector.detect([cameras[0].frames[0]])  # warm-up, not timed
    with tempfile.TemporaryDirectory() as evidence:
        pipeline = Pipeline([c.camera for c in cameras], scenarios, settings, detector,
                            EvidenceStore(Path(evidence)), report_missing=False,
                            classifiers=None if classifiers else Classifiers())
        if classifiers and (pipeline.classifiers.second_look is None or pipeline.classifiers.embedder is None):
            raise SystemExit("classifiers on, but " + ("; ".join(pipeline.classifiers.lines) or "none loaded"))
        started = time.perf_counter()
        events = 0
        for step in range(steps):
            now = EPOCH + step * TARGET_INTERVAL_S
            frames = [Frame(sim.camera.id, sim.frames[step], now, step) for sim in cameras]
            events += len(pipeline.process(frames))
        elapsed = time.perf_counter() - started
    return (elapsed, pipeline.stats, events, pipeline.plates.stats if pipeline.plates else None,
            classifier_cost(pipeline))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--moving", type=int, default=2, help="cameras replaying the moving CCTV clips")
    parser.add_argument("--duration", type=float, default=120.0, help="simulated seconds per camera")
    parser.add_argument("--batch", type=int, default=8, help="pipeline batch (capped by what the model takes)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="pipeline runs with this many parallel model instances (one run each)")
    parser.add_argument("--plates", nargs="+", choices=["on", "off"], default=["on"],
                        help="pipeline runs with the plate stage on and/or off (one run each per workers value)")
    parser.add_argument("--classifiers", nargs="+", choices=["on", "off"], default=["on", "off"],
                        help="pipeline runs with the second look and scene heads on and/or off (one run each)")
    parser.add_argument("--look-dwell", type=float, default=30.0,
                        help="dwell (s) of the scenarios the second look judges, so their candidates reach it")
    parser.add_argument("--weights", default=os.environ.get("NONSITE_WEIGHTS"))
    parser.add_argument("--media", type=Path, default=Path(os.environ.get("NONSITE_MEDIA", "")))
    parser.add_argument("--config", type=Path, default=PROJECT / "configs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--older-input", action="store_true",
                        help="this bench's input before 7824260 (each camera's sidewalk, no_vending and no_piling "
                             "zones only; no vendors' photos; every dwell as configured), to compare with code of "
                             "that time")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best time of each side counts")
    parser.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    args = parser.parse_args(argv)
    if not args.weights or not Path(args.weights).exists():
        parser.error("set NONSITE_WEIGHTS or --weights to the model file")
    if not args.media.is_dir():
        parser.error("set NONSITE_MEDIA or --media to the folder of real photos and clips")
    setup_logging("WARNING")

    steps = int(args.duration / TARGET_INTERVAL_S)
    cameras = build_cameras(args.media, args.cameras, args.moving, steps, args.seed, args.older_input)
    print(f"input: {args.cameras} cameras ({args.moving} moving, {args.cameras - args.moving} still with one "
          f"scene change), {steps} samples each every {TARGET_INTERVAL_S:g} s = {steps * args.cameras} "
          f"camera-frames; {os.cpu_count()} CPUs")

    need = TARGET_CAMERAS / TARGET_INTERVAL_S
    naive_times: list[float] = []
    variants = [(w, p, c) for w in args.workers for p in args.plates for c in args.classifiers]
    runs: dict[tuple[int, str, str], list[tuple]] = {v: [] for v in variants}
    for round_number in range(1, args.rounds + 1):  # interleaved, best of each: the machine may be shared
        naive_s, naive_frames = run_naive(args.weights, cameras, steps)
        naive_times.append(naive_s)
        line = f"round {round_number}: naive {naive_frames / naive_s:.1f}"
        for workers, plates, looks in variants:
            run = run_pipeline(args.weights, cameras, steps, args.config, args.batch, workers, plates == "on",
                               looks == "on", float("inf") if args.older_input else args.look_dwell)
            runs[(workers, plates, looks)].append(run)
            line += f", pipeline x{workers} plates {plates} classifiers {looks} {run[1].frames / run[0]:.1f}"
        print(line + " camera-frames/s")
    naive_rate = naive_frames / min(naive_times)
    print(f"(a) naive model.predict per frame:  {naive_frames} frames in {min(naive_times):.1f} s = "
          f"{naive_rate:.1f} camera-frames/s")
    results = []
    for workers, plates, looks in variants:
        pipe_s, stats, events, plate_stats, cost = min(runs[(workers, plates, looks)], key=lambda run: run[0])
        pipe_rate = stats.frames / pipe_s
        ratio = pipe_rate / naive_rate
        print(f"(b) pipeline, {workers} model worker{'s' if workers > 1 else ' '}, plates {plates}, classifiers "
              f"{looks}: {stats.frames} "
              f"frames in {pipe_s:.1f} s = {pipe_rate:.1f} camera-frames/s, {1000 * pipe_s / stats.frames:.1f} ms a "
              f"frame (inferred {stats.inferred} = {stats.inferred / stats.frames:.0%}, {stats.model_calls} model "
              f"calls, {events} events)")
        if plate_stats is not None:
            print(f"    plate stage: {plate_stats.reads} reads ({plate_stats.found} found a plate) in "
                  f"{plate_stats.seconds:.1f} s")
        if looks == "on":
            print(f"    classifiers: second look {cost.crops} crops in {cost.look_s:.2f} s "
                  f"({1000 * cost.look_s / max(cost.crops, 1):.1f} ms a crop), scene heads {cost.samples} zone "
                  f"samples, {cost.embeddings} embedded, in {cost.scene_s:.2f} s; "
                  f"{1000 * cost.seconds / stats.frames:.2f} ms a camera-frame")
        print(f"    ratio pipeline/naive: {ratio:.2f}x (goal >= 4x); 150 cameras every 2 s need {need:.0f} "
              f"camera-frames/s: {'keeps up' if pipe_rate >= need else 'does NOT keep up'} "
              f"({pipe_rate / need:.2f}x of the need)")
        results.append({"workers": workers, "plates": plates, "classifiers": looks,
                        "classifier_ms_per_frame": round(1000 * cost.seconds / stats.frames, 3),
                        "second_look_crops": cost.crops, "scene_embeddings": cost.embeddings,
                        "pipeline_fps": round(pipe_rate, 2),
                        "ms_per_frame": round(1000 * pipe_s / stats.frames, 2), "ratio": round(ratio, 2),
                        "plate_reads": plate_stats.reads if plate_stats else 0,
                        "inferred_fraction": round(stats.inferred / stats.frames, 3),
                        "model_calls": stats.model_calls, "events": events})
    for workers, plates in dict.fromkeys((w, p) for w, p, _ in variants):
        both = {c: min(runs[(workers, plates, c)], key=lambda run: run[0]) for c in args.classifiers
                if (workers, plates, c) in runs}
        if len(both) == 2:
            on, off = (1000 * both[c][0] / both[c][1].frames for c in ("on", "off"))
            print(f"(c) x{workers}, plates {plates}: the classifiers cost {on - off:+.2f} ms a camera-frame "
                  f"({off:.2f} -> {on:.2f} ms); 150 cameras every 2 s need {need:.0f} camera-frames/s: "
                  f"{1000 / off:.1f} without, {1000 / on:.1f} with them")
    if args.json:
        print(json.dumps({"cameras": args.cameras, "moving": args.moving, "steps": steps,
                          "naive_fps": round(naive_rate, 2), "pipeline": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
