"""A bad configuration file is reported as one line naming the file and the field, exit code 2."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nonsite.config import ConfigError, load_city

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "configs"
    shutil.copytree(PROJECT / "configs", folder)
    return folder


def edit(folder: Path, filename: str, old: str, new: str) -> None:
    path = folder / filename
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture text {old!r} not in {filename}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


MISTAKES = [
    pytest.param("cameras.yaml", "    name: 城关路口 Chengguan crossing (dog)\n", "",
                 "cameras.yaml: cameras[0].name: required field is missing", id="missing-field"),
    pytest.param("cameras.yaml", "sample_interval_s: 1", "sample_interval_s: fast",
                 "cameras.yaml: cameras[0].sample_interval_s: Input should be a valid number", id="wrong-type"),
    pytest.param("cameras.yaml", "polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]", "polygon: [[0, 0], [1, 0]]",
                 "cameras.yaml: cameras[0].zones[0].polygon: a polygon needs at least 3 points, got 2",
                 id="polygon-too-short"),
    pytest.param("scenarios.yaml", "zone_kinds: [sidewalk]", "zone_kinds: [pavement]",
                 "scenarios.yaml: scenarios[0].zone_kinds[0]: Input should be 'sidewalk'", id="unknown-zone-kind"),
    pytest.param("cameras.yaml", "id: cam-02", "id: cam-01",
                 "cameras.yaml: cameras[1].id: duplicate camera id 'cam-01'", id="duplicate-camera"),
    pytest.param("cameras.yaml", "grid: G02", "grid: G09",
                 "cameras.yaml: cameras[2].grid: unknown grid 'G09'", id="unknown-grid"),
    pytest.param("scenarios.yaml", "dwell_s: 120", "dwell_s: 120\n    colour: red",
                 "scenarios.yaml: scenarios[0].colour: unknown field", id="unknown-field"),
    pytest.param("cameras.yaml", "[[0, 0], [1, 0], [1, 1], [0, 1]]", "[[0, 0], [1.5, 0], [1, 1], [0, 1]]",
                 "cameras.yaml: cameras[0].zones[0].polygon: point (1.5, 0.0) is outside the normalised image",
                 id="point-outside-image"),
    pytest.param("nonsite.yaml", "partitions: 4", "partitions: 0",
                 "nonsite.yaml: kafka.partitions: Input should be greater than or equal to 1", id="out-of-range"),
    pytest.param("grids.yaml", "grid: G02", "grid: G07", "grids.yaml: officers[2].grid: unknown grid 'G07'",
                 id="officer-unknown-grid"),
    pytest.param("scenarios.yaml", "scenarios:", "scenarios: [\n", "scenarios.yaml: line 6: not valid YAML",
                 id="broken-yaml"),
]


@pytest.mark.parametrize("filename, old, new, expected", MISTAKES)
def test_mistake_is_one_line_naming_file_and_field(config_copy, filename, old, new, expected):
    edit(config_copy, filename, old, new)
    with pytest.raises(ConfigError) as caught:
        load_city(config_copy)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(config_copy))
    assert expected in message


def test_cli_prints_one_line_and_exits_2(config_copy):
    edit(config_copy, "cameras.yaml", "id: cam-02", "id: cam-01")
    result = subprocess.run([sys.executable, "-m", "nonsite.cli", "--config", str(config_copy), "config"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"nonsite: config error: {config_copy}/cameras.yaml: cameras[1].id: duplicate camera id 'cam-01'"]
    assert "Traceback" not in result.stderr


def test_sample_city_is_valid_and_env_overrides_apply(monkeypatch):
    monkeypatch.setenv("NONSITE_KAFKA_BOOTSTRAP", "broker-a:9092,broker-b:9092")
    monkeypatch.setenv("NONSITE_WEIGHTS", "/models/city.onnx")
    city = load_city(PROJECT / "configs")
    assert city.kafka.bootstrap == "broker-a:9092,broker-b:9092"
    assert city.detector.weights == "/models/city.onnx"
    assert {s.id for s in city.scenarios} == {"sidewalk_parking", "road_occupation", "mobile_vendor",
                                              "material_piling", "street_drying", "illegal_ads", "stray_dog"}
    assert all(city.camera(c.id).grid in {g.id for g in city.grids} for c in city.cameras)


def test_shift_overnight_and_around_the_clock():
    from datetime import time

    from nonsite.config import Shift

    night = Shift(days=["mon"], start=time(22), end=time(6))
    assert night.covers(0, time(23)) and night.covers(1, time(5)) and not night.covers(1, time(7))
    assert not night.covers(0, time(5))  # Monday 05:00 belongs to Sunday's shift, which is not listed
    always = Shift(start=time(0), end=time(0))
    assert all(always.covers(day, time(12)) for day in range(7))


def test_unset_environment_variable_is_named(config_copy, monkeypatch):
    monkeypatch.delenv("NONSITE_NOT_SET", raising=False)
    edit(config_copy, "nonsite.yaml", "name: Sample County-level City", "name: ${NONSITE_NOT_SET}")
    with pytest.raises(ConfigError, match=r"nonsite.yaml: city.name: environment variable NONSITE_NOT_SET is not set"):
        load_city(config_copy)
