"""Camera privacy zones (docs/privacy.md): validated in the config, black in every picture the detector stores,
and never seen by the model.

The stored pictures are checked end to end through ``nonsite detect-file`` on the dog photo held as a video
(the originals and their masked copies, and the annotated video), and in the pipeline on the crosswalk photo
with a zone across two faces (the masked copies pixelate faces next to the zone).  The model is shown the dog
photo with the dog inside a zone, through a wrapper that keeps what it was given.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from conftest import PROJECT
from contract import Detection
from detector.inference import DetectedObject, Detector
from detector.pipeline import Pipeline
from detector.privacy_zones import PrivacyBlackout, zone_mask
from detector.samples import build_still_video
from detector.sources import Frame
from nonsite.config import Camera, ConfigError, DetectorSettings, MotionSettings, Scenario, load_city
from nonsite.evidence import EvidenceStore, verify

EPOCH = 1_800_000_000.0
NONSITE = [sys.executable, "-c", "import sys; from nonsite.cli import main; sys.exit(main())"]
TOP_RIGHT = [[0.5, 0.0], [1.0, 0.0], [1.0, 0.5], [0.5, 0.5]]  # of the dog photo: a wall and a window, no dog
DOG = [[0.12, 0.30], [0.45, 0.30], [0.45, 1.0], [0.12, 1.0]]  # around the dog (detector.samples.DOG_REGION)
JPEG_MARGIN = 8  # pixels: one JPEG block on each side of a zone's edge may ring
DARK = 12  # at most this bright, in any channel, inside a zone's margin (JPEG's and mp4v's noise on black)


def inside(polygon_box: list[list[float]], shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The pixels of a rectangular zone, less :data:`JPEG_MARGIN` on each side."""
    height, width = shape[:2]
    xs, ys = [p[0] for p in polygon_box], [p[1] for p in polygon_box]
    return (slice(int(min(ys) * height) + JPEG_MARGIN, int(max(ys) * height) - JPEG_MARGIN),
            slice(int(min(xs) * width) + JPEG_MARGIN, int(max(xs) * width) - JPEG_MARGIN))


def stored_pictures(root: Path) -> dict[Path, np.ndarray]:
    return {path: cv2.imread(str(path)) for path in sorted(root.rglob("*.jpg"))}


# ---------------------------------------------------------------------------------- the mask and the config
def test_a_zone_is_blacked_out_and_nothing_else():
    triangle = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0))
    image = np.full((50, 100, 3), 200, np.uint8)
    blackout = PrivacyBlackout([triangle])
    assert blackout.apply(image) is image  # in place
    assert image[0].max() == 0 and image[:, 0].max() == 0  # the edges of the frame included
    assert image[30:, 60:].min() == 200  # the other half untouched
    assert zone_mask([triangle], image.shape).sum() == (image.max(axis=2) == 0).sum()
    assert not PrivacyBlackout([]) and PrivacyBlackout([]).apply(image) is image


def config_with(tmp_path: Path, privacy_zones: list, camera_index: int = 1) -> Path:
    config = tmp_path / "configs"
    shutil.copytree(PROJECT / "configs", config)
    cameras = yaml.safe_load((config / "cameras.yaml").read_text(encoding="utf-8"))
    cameras["cameras"][camera_index]["privacy_zones"] = privacy_zones
    (config / "cameras.yaml").write_text(yaml.safe_dump(cameras, allow_unicode=True), encoding="utf-8")
    return config


@pytest.mark.parametrize("zones, problem", [
    ([{"polygon": [[0.1, 0.1], [0.5, 0.1]]}], "privacy_zones[0].polygon: a polygon needs at least 3 points, got 2"),
    ([{"name": "flat", "polygon": [[0.1, 0.1], [1.2, 0.1], [0.5, 0.5]]}],
     "privacy_zones[0].polygon: point (1.2, 0.1) is outside the normalised image [0, 1]"),
    ([{"polygon": [[0, 0], [1, 0], [1, 1]]}, {"polygon": [[0.2, -0.1], [0.5, 0.2], [0.1, 0.3]]}],
     "privacy_zones[1].polygon: point (0.2, -0.1) is outside the normalised image [0, 1]"),
    ([{"polygon": [[0, 0], [1, 0], [1, 1]], "colour": "black"}], "privacy_zones[0].colour: unknown field"),
])
def test_privacy_zones_are_checked_with_one_line_errors(tmp_path, zones, problem):
    config = config_with(tmp_path, zones)
    with pytest.raises(ConfigError) as refused:
        load_city(config)
    assert str(refused.value) == f"{config / 'cameras.yaml'}: cameras[1].{problem}"


def test_a_camera_reads_its_privacy_zones(tmp_path):
    city = load_city(config_with(tmp_path, [{"name": "flat 3 windows", "polygon": TOP_RIGHT}]))
    assert [(z.name, z.polygon) for z in city.camera("cam-02").privacy_zones] == \
        [("flat 3 windows", [tuple(p) for p in TOP_RIGHT])]
    assert city.camera("cam-01").privacy_zones == []


# ---------------------------------------------------------------------------------- the model never sees one
class Seeing:
    """The real model, keeping a copy of every image it is given."""

    def __init__(self, model: Detector) -> None:
        self.model, self.max_batch, self.seen = model, model.max_batch, []

    @property
    def class_names(self) -> set[str]:
        return self.model.class_names

    def detect(self, images) -> list[list[DetectedObject]]:
        self.seen += [image.copy() for image in images]
        return self.model.detect(images)


def dog_run(weights_path: Path, media_dir: Path, privacy_zones: list) -> tuple[list[Detection], Seeing]:
    model = Seeing(Detector.load(weights_path, imgsz=640, batch=4, min_confidence=0.25))
    stray = Scenario(id="stray_dog", label_zh="流浪犬", label_en="Stray dog", rule="unaccompanied", classes=["dog"],
                     companion_classes=["person"], dwell_s=3)
    camera = Camera(id="cam-dog", name="dog", source="x", location={"lat": 30.0, "lon": 104.0}, grid="G01",
                    privacy_zones=[{"polygon": zone} for zone in privacy_zones])
    settings = DetectorSettings(motion=MotionSettings(enabled=False))
    pipeline = Pipeline([camera], [stray], settings, model, None, report_missing=False)
    photo = cv2.imread(str(media_dir / "dog.jpg"))
    events = []
    for t in range(6):
        events += pipeline.process([Frame("cam-dog", photo.copy(), EPOCH + t, t)])
    return events, model


@pytest.mark.model
def test_the_model_never_sees_a_privacy_zone(weights_path, media_dir):
    events, model = dog_run(weights_path, media_dir, [])
    assert [(e.kind, e.object_class) for e in events] == [("start", "dog")]  # seen without a zone
    events, model = dog_run(weights_path, media_dir, [DOG])
    assert events == [] and len(model.seen) == 6
    for image in model.seen:
        assert image[zone_mask([tuple(map(tuple, DOG))], image.shape)].max() == 0


@pytest.mark.model
def test_no_stored_picture_shows_a_privacy_zone_even_beside_a_masked_face(media_dir, tmp_path):
    """A zone over the crosswalk photo's left faces, its edge through one: the masked copies pixelate faces next
    to it, and the annotated picture draws the car's box and label across it."""
    zone = [[0.0, 0.0], [0.14, 0.0], [0.14, 0.5], [0.0, 0.5]]  # its edge crosses the face of the woman in red

    class OneCar:
        max_batch, class_names = 4, {"car"}

        def detect(self, images):
            return [[DetectedObject("car", 0.9, (0.02, 0.45, 0.4, 0.99))] for _ in images]

    camera = Camera(id="cam-z", name="z", source="x", location={"lat": 30.0, "lon": 104.0}, grid="G01",
                    privacy_zones=[{"polygon": zone}])
    parking = Scenario(id="sidewalk_parking", label_zh="违停", label_en="parking", classes=["car"], dwell_s=3)
    store = tmp_path / "evidence"
    pipeline = Pipeline([camera], [parking], DetectorSettings(motion=MotionSettings(enabled=False)), OneCar(),
                        EvidenceStore(store), report_missing=False)
    photo = cv2.imread(str(media_dir / "faces" / "H01_pexels_city_crosswalk.jpg"))
    events = []
    for t in range(5):
        events += pipeline.process([Frame("cam-z", photo.copy(), EPOCH + t, t)])
    start = next(e for e in events if e.kind == "start")
    shas = {e.sha256 for e in start.evidence} | {s for e in start.evidence for s in e.masked.values()}
    assert len(shas) >= 4 and verify(events, store) == []  # originals and masked copies of two pictures
    pictures = stored_pictures(store)
    assert len(pictures) == len(shas)
    for path, picture in pictures.items():
        assert picture.shape == photo.shape, path
        assert picture[inside(zone, picture.shape)].max() <= DARK, path


# ---------------------------------------------------------------------------------- end to end: detect-file
@pytest.mark.model
@pytest.mark.slow
def test_detect_file_stores_no_pixel_of_a_privacy_zone(tmp_path, weights_path, media_dir):
    video = build_still_video(media_dir / "dog.jpg", tmp_path / "dog.mp4", hold_s=25, gone_s=15)
    config = config_with(tmp_path, [{"name": "windows", "polygon": TOP_RIGHT}], camera_index=0)  # cam-01
    scenarios = yaml.safe_load((config / "scenarios.yaml").read_text(encoding="utf-8"))
    for scenario in scenarios["scenarios"]:
        scenario["dwell_s"] = 10
    (config / "scenarios.yaml").write_text(yaml.safe_dump(scenarios, allow_unicode=True), encoding="utf-8")
    annotated = tmp_path / "annotated.mp4"
    run = subprocess.run(NONSITE + ["--config", str(config), "detect-file", str(video), "--camera", "cam-01",
                                    "--annotated", str(annotated), "--start-epoch", str(EPOCH)],
                         cwd=PROJECT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NONSITE_WEIGHTS": str(weights_path)})
    assert run.returncode == 0, run.stderr[-2000:]
    events = [Detection.from_json(line) for line in run.stdout.splitlines()]
    assert [(e.kind, e.scenario) for e in events] == [("start", "stray_dog"), ("end", "stray_dog")]
    start = events[0]
    assert [e.kind for e in start.evidence] == ["annotated", "first_seen"]
    assert all(set(e.masked) == {"subject", "public"} for e in start.evidence)
    store = tmp_path / "var" / "evidence"
    assert verify(events, store) == []
    pictures = stored_pictures(store)
    assert len(pictures) >= 2
    for path, picture in pictures.items():
        assert picture[inside(TOP_RIGHT, picture.shape)].max() <= DARK, path
        assert picture[inside([[0.15, 0.55], [0.4, 0.55], [0.4, 0.9], [0.15, 0.9]], picture.shape)].max() > 100
    capture = cv2.VideoCapture(str(annotated))
    frames = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames += 1
        assert frame[inside(TOP_RIGHT, frame.shape)].max() <= DARK, f"annotated video frame {frames}"
    capture.release()
    assert frames == 40
