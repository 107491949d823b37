"""Plate reading on real photos and video (NONSITE_MEDIA): exact plates, nothing invented, the CLI, the vote."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.plates import PlateRead, PlateReader, PlateVote, is_plate

PROJECT = Path(__file__).resolve().parents[2]
NONSITE = [sys.executable, "-c", "import sys; from nonsite.cli import main; sys.exit(main())"]
PHOTOS = {  # file under plates/ -> the plate that must be read exactly
    "easypr_01_A88731.jpg": "京A88731",
    "easypr_09_A12210.jpg": "浙A12210",  # yellow plate
    "ccpd_0130387931034-92_78-208&514_430&581-440&588_205&575_185&501_420&514-0_0_24_12_31_25_32-134-19.jpg":
        "皖A0N718",
}
NO_PLATE = "laundry/A02_NEG_empty_clothesline_pegs.jpg"
SIGNBOARDS = "ads/B07_shanghai_nanjing_road_signboards.jpg"  # Chinese characters, no plate


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader()


def image(path: Path) -> np.ndarray:
    loaded = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
    assert loaded is not None, path
    return loaded


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_reads_the_exact_plate(reader: PlateReader, media_dir: Path, name: str) -> None:
    reads = reader.read(image(media_dir / "plates" / name))
    assert [r.plate for r in reads] == [PHOTOS[name]]
    assert reads[0].confidence >= reader.threshold and is_plate(reads[0].plate)


def test_reads_every_plate_of_a_street_photo(reader: PlateReader, media_dir: Path) -> None:
    reads = reader.read(image(media_dir / "plates" / "easypr_07_AHP676.jpg"))
    assert {r.plate for r in reads} == {"津AHP676", "冀DPF690", "津GDL178"}


def test_a_vehicle_box_limits_the_search_and_boxes_stay_in_image_pixels(reader: PlateReader, media_dir: Path) -> None:
    photo = image(media_dir / "plates" / "easypr_02_FA3215.jpg")
    everything = {r.plate: r.box for r in reader.read(photo)}
    x1, y1, x2, y2 = everything["冀FA3215"]
    car = (max(x1 - 120, 0), max(y1 - 260, 0), x2 + 120, y2 + 60)  # about a car around its plate
    reads = reader.read(photo, box=car)
    assert [r.plate for r in reads] == ["冀FA3215"]
    assert all(abs(a - b) <= 4 for a, b in zip(reads[0].box, everything["冀FA3215"]))


@pytest.mark.parametrize("name", [NO_PLATE, SIGNBOARDS])
def test_invents_nothing_without_a_plate(reader: PlateReader, media_dir: Path, name: str) -> None:
    assert reader.read(image(media_dir / name)) == []


def test_unreadable_input_gives_nothing(reader: PlateReader) -> None:
    assert reader.read(np.zeros((4, 4, 3), np.uint8)) == []
    assert reader.read(np.full((480, 640, 3), 128, np.uint8)) == []


def test_cli_prints_one_json_line_per_file_and_one_error_line(media_dir: Path, tmp_path: Path) -> None:
    good = media_dir / "plates" / "easypr_01_A88731.jpg"
    missing = tmp_path / "missing.jpg"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    done = subprocess.run(NONSITE + ["plates", "read", str(good), str(missing), str(broken)], cwd=PROJECT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 1 and lines[0]["file"] == str(good)
    (plate,) = lines[0]["plates"]
    assert plate["plate"] == "京A88731" and 0.85 <= plate["confidence"] <= 1
    x1, y1, x2, y2 = plate["box"]
    assert 0 <= x1 < x2 and 0 <= y1 < y2
    errors = done.stderr.strip().splitlines()
    assert errors == [f"nonsite: cannot read {missing}: no such file",
                      f"nonsite: cannot read {broken}: not an image OpenCV can decode"]


def test_cli_exit_zero_when_all_files_read(media_dir: Path) -> None:
    done = subprocess.run(NONSITE + ["plates", "read", str(media_dir / NO_PLATE)], cwd=PROJECT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"file": str(media_dir / NO_PLATE), "plates": []}


def test_vote_outweighs_a_small_blurred_misread() -> None:
    vote = PlateVote()
    assert vote.result() is None
    big, small = (0, 0, 140, 44), (0, 0, 50, 16)
    vote.add(PlateRead("京EM0139", 0.93, small))
    vote.add(PlateRead("京EM0139", 0.93, small))
    vote.add(PlateRead("京EMC139", 0.96, big))
    vote.add(None)
    result = vote.result()
    assert result is not None and result.plate == "京EMC139" and result.frames == 3 and result.reads == 1


def test_vote_refuses_an_even_split() -> None:
    vote = PlateVote()
    vote.add(PlateRead("京EMC139", 0.95, (0, 0, 100, 30)))
    vote.add(PlateRead("京EM0139", 0.95, (0, 0, 100, 30)))
    assert vote.result() is None


@pytest.mark.slow
def test_vote_over_the_parking_video(reader: PlateReader, media_dir: Path) -> None:
    """Frames 240..480 of the phone clip, one in 40: the white car's plate, voted."""
    capture = cv2.VideoCapture(str(media_dir / "parking" / "E01_ltb2k_roadside_parking_china.mp4"))
    vote = PlateVote()
    for index in range(240, 481, 40):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok
        reads = [r for r in reader.read(frame) if r.plate.startswith("京E")]
        vote.add(reads[0] if reads else None, frame)
    capture.release()
    result = vote.result()
    assert result is not None and result.plate == "京EMC139" and result.frames >= 4
