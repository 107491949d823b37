"""Microseconds per detection in each stage of the worker, without Kafka: admit (intake's validation and
routing) -> pack -> unpack -> the case engine -> the changelog records of its writes, on the stream
benchmark's input, packed per poll of ``--poll`` detections as intake packs them.

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

        from stream.runtime.changelog import ChangelogStore

        def apply(engine, inputs, at):
            return engine.handle_batch_isolated(inputs, at=at, cases_topic="cases")
        return (stream_bench, CityMap, Engine, Tables, (lambda *a: admit(*a)), pack, unpack, apply,
                lambda: ChangelogStore({}, "changelog"))
    from stream.dedup import CityMap
    from stream.engine import Engine, Tables
    from stream.intake import admit_checked, pack, unpack
    return (stream_bench, CityMap, Engine, Tables, (lambda *a: admit_checked(*a)[0]), pack, unpack,
            lambda engine, inputs, at: engine.handle_batch(inputs, at=at), PlainChangelog)


class PlainChangelog(dict):
    """The store of checkouts before 2026-12-01, later: every record encoded whole."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list = []
        import msgspec
        self._encode = msgspec.json.Encoder().encode

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.pending.append((key, value))

    def encode(self, key, record) -> bytes:
        return self._encode(record)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--detections", type=int, default=100_000)
    parser.add_argument("--poll", type=int, default=2000, help="detections per poll (intake's INTAKE_BATCH)")
    args = parser.parse_args()
    bench, CityMap, Engine, Tables, admit, pack, unpack, apply, changelog = load(args.tree.resolve())
    city = bench.bench_city(Path(tempfile.mkdtemp()))
    city_map = CityMap.build(city)
    raws = [d.to_json() for d in bench.make_detections(city, args.detections)]
    gc.freeze()
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    t0 = time.perf_counter()
    inputs = [admit("detections", raw, "det", 0, offset, city_map) for offset, raw in enumerate(raws)]
    t1 = time.perf_counter()
    messages = [m for start in range(0, len(raws), args.poll)
                for m in packed_poll(pack, inputs[start:start + args.poll], raws[start:start + args.poll])]
    t2 = time.perf_counter()
    units = [unpack(m) for m in messages]
    t3 = time.perf_counter()
    store = changelog()
    engine = Engine(city, Tables.over(store), city_map)
    writes, encoding = [], 0.0
    for offset, unit in enumerate(units):
        apply(engine, unit, (0, offset)).snapshots()
        writes, store.pending = store.pending, []
        started = time.perf_counter()
        for key, record in writes:
            store.encode(key, record)
        encoding += time.perf_counter() - started
    t4 = time.perf_counter()
    per = 1e6 / len(raws)
    print(f"{args.tree}: per detection: admit {(t1 - t0) * per:.2f} us, pack {(t2 - t1) * per:.2f} us, "
          f"unpack {(t3 - t2) * per:.2f} us, engine {(t4 - t3 - encoding) * per:.2f} us, changelog "
          f"{encoding * per:.2f} us; all {(t4 - t0) * per:.2f} us ({len(units)} units)")
    return 0


def packed_poll(pack, inputs: list, raws: list) -> list[bytes]:
    """The cases messages intake sends for one poll: one per district (more when over the size limit)."""
    by_district: dict = {}
    for env, raw in zip(inputs, raws):
        envs, kept = by_district.setdefault(env.district, ([], []))
        envs.append(env)
        kept.append(raw)
    return [m for envs, kept in by_district.values() for m in pack(envs, raws=kept)]


if __name__ == "__main__":
    raise SystemExit(main())
