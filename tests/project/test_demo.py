"""`make demo` runs `nonsite demo`: this runs the same command end to end (with --exit) on free ports."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import free_cluster_base, free_port_block

pytestmark = [pytest.mark.kafka, pytest.mark.model, pytest.mark.slow]


def test_demo_turns_sample_footage_into_dispatched_tasks(tmp_path, weights_path, media_dir):
    env = {k: v for k, v in os.environ.items() if k != "NONSITE_KAFKA_BOOTSTRAP"}
    env.update(NONSITE_WEIGHTS=str(weights_path), NONSITE_MEDIA=str(media_dir))
    ports = [str(free_port_block(1)), str(free_port_block(1))]
    result = subprocess.run(
        [sys.executable, "-m", "nonsite.cli", "demo", "--exit", "--kafka-port", str(free_cluster_base(1)),
         "--kafka-data-dir", str(tmp_path / "kafka"), "--web-port", ports[0], "--worker-port", ports[1]],
        capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    summary = re.search(r"(\d+) incidents, (\d+) tasks dispatched", out)
    assert summary, out
    incidents, tasks = map(int, summary.groups())
    assert incidents >= 2 and tasks >= incidents, out
    for scenario in ("stray_dog", "sidewalk_parking"):
        assert re.search(rf"{scenario}\s+cam-0\d\s+DISPATCHED\s+→ \S", out), f"no dispatched {scenario} case:\n{out}"
    assert f"http://localhost:{ports[0]}/" in out
