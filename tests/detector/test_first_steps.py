"""What a new user tripped over while configuring cameras (issue 10, item 6).

* a configuration with one camera loads: a scenario no camera has a zone for is a warning at start
  (``nonsite config`` lists it), not a config error;
* ``detect-file`` stamps its events from now by default (``--start-time`` gives the recording's time,
  ``mtime`` the old default) and ends with a summary per scenario and the evidence folder;
* docs/detector.md says what each zone kind means and which scenarios use it, and each rule's limits.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT
from contract import Detection, to_epoch
from detector.cli import start_time
from detector.samples import DOG_REGION, build_still_video
from nonsite.config import ZONE_KINDS, City, Scenario, load_city, unwatched_scenarios
from nonsite.config.common import RuleKind
from nonsite.errors import CommandError

NONSITE = [sys.executable, "-c", "import sys; from nonsite.cli import main; sys.exit(main())"]
KERB = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
NOT_WATCHED = ["road_occupation", "mobile_vendor", "material_piling", "street_drying", "illegal_ads"]


def one_camera_city(tmp_path: Path, source: str = "file.mp4", dwell_s: float | None = None) -> Path:
    """The sample configuration with one camera, a sidewalk zone only (what a new user starts with)."""
    config = tmp_path / "configs"
    shutil.copytree(PROJECT / "configs", config)
    camera = {"id": "cam-01", "name": "my first camera", "source": source, "grid": "G01",
              "location": {"lat": 30.65, "lon": 104.07},
              "zones": [{"id": "z-kerb", "kind": "sidewalk", "polygon": KERB}]}
    (config / "cameras.yaml").write_text(yaml.safe_dump({"cameras": [camera]}), encoding="utf-8")
    if dwell_s is not None:
        scenarios = yaml.safe_load((config / "scenarios.yaml").read_text(encoding="utf-8"))
        for scenario in scenarios["scenarios"]:
            scenario["dwell_s"] = dwell_s
        (config / "scenarios.yaml").write_text(yaml.safe_dump(scenarios, allow_unicode=True), encoding="utf-8")
    return config


def nonsite(config: Path, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(NONSITE + ["--config", str(config), *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


# ------------------------------------------------------------------------------------------- one camera
def test_a_config_with_one_camera_loads_and_names_the_scenarios_it_cannot_watch(tmp_path):
    city = load_city(one_camera_city(tmp_path))
    assert [c.id for c in city.cameras] == ["cam-01"]
    lines = unwatched_scenarios(city.cameras, city.scenarios)
    assert [re.match(r"scenario '(\w+)'", line).group(1) for line in lines] == NOT_WATCHED
    assert lines[0] == ("scenario 'road_occupation' is watched by no camera: no zone of kind 'storefront' "
                        "(it starts nowhere)")


def test_nonsite_config_on_one_camera_exits_0_with_the_warnings(tmp_path):
    run = nonsite(one_camera_city(tmp_path), "config", timeout=60)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["cameras"] == 1 and len(summary["warnings"]) == len(NOT_WATCHED)
    warned = [line for line in run.stderr.splitlines() if "is watched by no camera" in line]
    assert len(warned) == len(NOT_WATCHED) and all("warning" in line for line in warned)


def test_the_sample_city_and_disabled_or_anywhere_scenarios_are_not_warned(city: City):
    assert unwatched_scenarios(city.cameras, city.scenarios) == []
    shops = Scenario(id="road_occupation", label_zh="x", label_en="x", classes=["chair"], zone_kinds=["storefront"],
                     enabled=False)
    dog = Scenario(id="stray_dog", label_zh="x", label_en="x", classes=["dog"], zone_kinds=[])
    either = Scenario(id="x", label_zh="x", label_en="x", classes=["car"], zone_kinds=["plaza", "sidewalk"])
    assert unwatched_scenarios(city.cameras[1:2], [shops, dog, either]) == []  # cam-02 has a sidewalk zone only


# ------------------------------------------------------------------------------------------- the clock of detect-file
def args(**given) -> argparse.Namespace:
    return argparse.Namespace(**{"start_time": "now", "start_epoch": None, **given})


def test_detect_file_starts_its_clock_now_unless_told(tmp_path):
    video = tmp_path / "old.mp4"
    video.write_bytes(b"x")
    os.utime(video, (1_500_000_000, 1_500_000_000))
    before = time.time()
    assert before <= start_time(args(), video) <= time.time()
    assert start_time(args(start_time="mtime"), video) == 1_500_000_000
    assert start_time(args(start_time="2026-05-01T08:00:00+08:00"), video) == to_epoch("2026-05-01T00:00:00Z")
    assert start_time(args(start_time="now", start_epoch=1_800_000_000.0), video) == 1_800_000_000


@pytest.mark.parametrize("given", ["yesterday", "2026-05-01T08:00:00", "2026-13-01T08:00:00Z"])
def test_a_start_time_that_is_no_time_is_one_line(tmp_path, given):
    with pytest.raises(CommandError, match=r"^--start-time: expected now, mtime or an ISO 8601 time with its offset"):
        start_time(args(start_time=given), tmp_path / "v.mp4")


@pytest.mark.model
@pytest.mark.slow
def test_detect_file_on_one_camera_stamps_now_and_ends_with_a_summary(tmp_path, weights_path, media_dir):
    video = build_still_video(media_dir / "dog.jpg", tmp_path / "dog.mp4", hold_s=90, gone_s=30,
                              removed="paint", regions=[DOG_REGION])
    config = one_camera_city(tmp_path, str(video), dwell_s=60)
    before = time.time()
    run = nonsite(config, "detect-file", str(video), "--camera", "cam-01", env={"NONSITE_WEIGHTS": str(weights_path)})
    after = time.time()
    assert run.returncode == 0, run.stderr[-2000:]
    events = [Detection.from_json(line) for line in run.stdout.splitlines()]
    assert [(e.kind, e.scenario) for e in events] == [("start", "stray_dog"), ("end", "stray_dog")]
    assert before + 60 <= to_epoch(events[0].observed_at) <= after + 60  # video time from now, not the file's mtime
    evidence = tmp_path / "var" / "evidence"  # a relative evidence_dir: against the config folder's parent
    pictures = {e.uri for event in events for e in event.evidence}
    assert len(pictures) == 2 and all((evidence / uri).is_file() for uri in pictures)
    summary = run.stderr[run.stderr.index(f"cam-01 {video.name}: 120 frames"):].splitlines()
    assert summary[1].split() == ["scenario", "starts", "ends", "open", "at", "the", "end"]
    assert [line.split() for line in summary[2:4]] == [["sidewalk_parking", "0", "0", "0"],
                                                       ["stray_dog", "1", "1", "0"]]
    assert summary[4] == f"evidence: {evidence} (2 pictures)"


# ------------------------------------------------------------------------------------------- what users read
DETECTOR_DOC = (PROJECT / "docs" / "detector.md").read_text(encoding="utf-8")


def test_every_zone_kind_is_documented_with_the_scenarios_that_use_it(city: City):
    rows = dict(re.findall(r"^\| `(\w+)` \|.*\| ([^|]+) \|$", DETECTOR_DOC, re.MULTILINE))
    assert set(rows) == set(ZONE_KINDS)
    for kind in ZONE_KINDS:
        users = [s.id for s in city.scenarios if kind in s.zone_kinds]
        assert re.findall(r"`(\w+)`", rows[kind]) == users, kind
        assert (rows[kind].strip() == "none") == (not users), kind
    assert not [s.id for s in city.scenarios if s.zone_kinds == [] and f"`{s.id}`" not in DETECTOR_DOC]


def test_every_rule_has_its_limits_documented(city: City):
    limits = DETECTOR_DOC[DETECTOR_DOC.index("## Rules and their limits"):]
    for rule in RuleKind.__args__:
        section = re.search(rf"^### `{rule}`\n(.*?)(?=^### |^## |\Z)", limits, re.MULTILINE | re.DOTALL)
        assert section is not None, rule
        assert "Limits:" in section.group(1), rule
        for scenario in [s.id for s in city.scenarios if s.rule == rule]:
            assert f"`{scenario}`" in section.group(1), (rule, scenario)
