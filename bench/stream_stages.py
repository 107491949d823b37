"""Microseconds per detection in each stage of the worker, without Kafka: admit (intake's validation and
routing) -> pack -> unpack -> the case engine, on the stream benchmark's input.

Run it on this checkout, or on another checkout of the project to compare (the code of 2026-11-21 and
earlier kept the stream modules flat; both layouts are read)::

    .venv/bin/python bench/stream_stages.py                 # this checkout
    .venv/bin/python bench/stream_stages.py --tree ../old   # another checkout, same input

The worker's garbage-collector tuning is applied, as in ``nonsite worker``.
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path


def load(tree: Path):
    sys.path[:0] = [str(tree), str(tree / "bench")]
    import stream_bench
    if (tree / "contract").exists():
        from stream.domain.dedup import CityMap
        from stream.domain.engine import Engine, Tables
        from stream.domain.intake import admit, pack, unpack

        def apply(engine, inputs, at):
            return engine.handle_batch_isolated(inputs, at=at, cases_topic="cases")
        return stream_bench, CityMap, Engine, Tables, (lambda *a: admit(*a)), pack, unpack, apply
    from stream.dedup import CityMap
    from stream.engine import Engine, Tables
    from stream.intake import admit_checked, pack, unpack
    return (stream_bench, CityMap, Engine, Tables, (lambda *a: admit_checked(*a)[0]), pack, unpack,
            lambda engine, inputs, at: engine.handle_batch(inputs, at=at))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--detections", type=int, default=100_000)
    args = parser.parse_args()
    bench, CityMap, Engine, Tables, admit, pack, unpack, apply = load(args.tree.resolve())
    city = bench.bench_city(Path(tempfile.mkdtemp()))
    city_map = CityMap.build(city)
    raws = [d.to_json() for d in bench.make_detections(city, args.detections)]
    gc.freeze()
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    t0 = time.perf_counter()
    inputs = [admit("detections", raw, "det", 0, offset, city_map) for offset, raw in enumerate(raws)]
    t1 = time.perf_counter()
    by_district: dict = {}
    for env, raw in zip(inputs, raws):
        envs, kept = by_district.setdefault(env.district, ([], []))
        envs.append(env)
        kept.append(raw)
    messages = [m for envs, kept in by_district.values() for m in pack(envs, raws=kept)]
    t2 = time.perf_counter()
    units = [unpack(m) for m in messages]
    t3 = time.perf_counter()
    engine = Engine(city, Tables.in_memory(), city_map)
    for offset, unit in enumerate(units):
        apply(engine, unit, (0, offset)).snapshots()
    t4 = time.perf_counter()
    per = 1e6 / len(raws)
    print(f"{args.tree}: per detection: admit {(t1 - t0) * per:.2f} us, pack {(t2 - t1) * per:.2f} us, "
          f"unpack {(t3 - t2) * per:.2f} us, engine {(t4 - t3) * per:.2f} us; all {(t4 - t0) * per:.2f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
