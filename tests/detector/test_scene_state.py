"""Zone-state classifiers (issue 10, item 3): the generic heads on real photos through the real pipeline, the
N-samples state, and the per-spot training API.

The pile test plays ``dumping/D01`` (clothes, bags and boxes dumped on a brick sidewalk) as a still camera whose
``no_piling`` zone holds the pile from the first frame, then the same photo with the pile painted out
(inpainted from the pavement around it).  The shipped head was trained on crops of this photo too; what is
tested here is the state and the rules around it (models/train_scene.py reports the held-out figures).
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from contract import to_epoch
from detector.classify.heads import LinearHead, embedding, load_heads
from detector.classify.loading import Classifiers, load_classifiers
from detector.classify.scenes import SCENE_CLASS, SceneSighting, SceneWatcher, ZoneState
from detector.classify.spots import (LabelledCrop, fit_spot, load_spot, save_spot, spot_file, train_spot)
from detector.classify.tflite import ImageModel
from detector.pipeline import Pipeline, run_offline
from detector.rules import CameraRules, Frame
from detector.sources import Frame as CameraFrame
from detector.tracking import Track
from detector.zones import ZoneArea
from nonsite.config import Camera, Scenario
from nonsite.config.system import DetectorSettings, SceneSettings

from conftest import PROJECT, required_file

PILE_PHOTO = "dumping/D01_amsterdam_006_1495914154883.jpg"
PILE = (0.22, 0.24, 0.98, 0.57)
ZONE = [[0.1, 0.15], [1.0, 0.15], [1.0, 0.65], [0.1, 0.65]]
PILING = Scenario(id="material_piling", label_zh="乱堆物料", label_en="Piled materials", rule="static_foreground",
                  classes=["pile", "static_object"], zone_kinds=["no_piling"], dwell_s=20, confidence=0.35,
                  scene={"enabled": True})


@pytest.fixture(scope="module")
def embedder() -> ImageModel:
    weights = required_file("NONSITE_WEIGHTS", "the detector weights beside the embedding extractor")
    return ImageModel.load(weights.parent / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite")


def painted_out(image: np.ndarray, box, keep_outside: bool = False) -> np.ndarray:
    """The photo with ``box`` inpainted from what is around it (at a quarter of the size, then scaled back; with
    ``keep_outside``, the pixels outside ``box`` are the photo's own)."""
    height, width = image.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    mask[int(box[1] * height):int(box[3] * height), int(box[0] * width):int(box[2] * width)] = 255
    small = cv2.inpaint(cv2.resize(image, (width // 4, height // 4)), cv2.resize(mask, (width // 4, height // 4)),
                        5, cv2.INPAINT_TELEA)
    out = cv2.resize(small, (width, height))
    if keep_outside:
        out[mask == 0] = image[mask == 0]
    return out


def camera(zone_kind: str = "no_piling") -> Camera:
    return Camera(id="cam-pile", name="pile", source="x", location={"lat": 0, "lon": 0}, grid="G01",
                  sample_interval_s=5, zones=[{"id": "z-walk", "kind": zone_kind, "polygon": ZONE}])


# ------------------------------------------------------------------------------------------- the state
def test_the_state_changes_only_after_n_identical_samples():
    state = ZoneState(consecutive=3)
    said = [True, False, True, True, False, True, True, True, False, False, True, False, False, False]
    assert [state.sample(s) for s in said] == [False] * 7 + [True] * 6 + [False]


# ------------------------------------------------------------------------------------------- real photos
@pytest.mark.model
def test_a_pile_present_in_the_first_frame_fires_and_clears_when_painted_out(city, weights_path, media_dir):
    from detector.inference import Detector

    photo = cv2.imread(str(media_dir / PILE_PHOTO))
    clean = painted_out(photo, PILE)
    settings = city.detector.model_copy(update={"weights": str(weights_path)})
    pipeline = Pipeline([camera()], [PILING], settings, Detector.load(weights_path), None, report_missing=False)
    assert pipeline.classifiers.embedder is not None and "material_piling" in pipeline.classifiers.heads
    frames = [CameraFrame("cam-pile", photo if t < 60 else clean, float(t), i)
              for i, t in enumerate(range(0, 120, 5))]
    events = list(run_offline(pipeline, frames))
    # present from the samples at 0, 5 and 10 s (no background to learn), then the dwell of 20 s; painted out
    # from 60 s, absent after the samples at 60, 65 and 70 s: the state held until 65 s, the end comes
    # lost_after_s (10 s) after that
    assert [(e.kind, to_epoch(e.observed_at), e.dwell_s) for e in events] == [("start", 30.0, 20.0),
                                                                              ("end", 75.0, 55.0)]
    start = events[0]
    assert start.zone_id == "z-walk" and start.object_class == SCENE_CLASS and start.scenario == "material_piling"
    head = pipeline.classifiers.heads["material_piling"]
    assert start.classifier.model == f"scene:{head.model_hash}" and start.classifier.label == "present"
    watcher = pipeline.cameras["cam-pile"].scenes
    assert watcher is not None and watcher.stats.embeddings == 2  # a still: re-embedded only when the picture changed


@pytest.mark.model
def test_the_generic_heads_tell_their_scenes_apart_on_real_crops(embedder, media_dir):
    heads = load_heads(PROJECT / "models" / "scene_heads.npz")
    photo = cv2.imread(str(media_dir / PILE_PHOTO))
    pile, street = embedding(embedder, photo, (0.1, 0.15, 1.0, 0.65)), embedding(embedder, photo, (0.0, 0.65, 1.0, 1.0))
    clean = embedding(embedder, painted_out(photo, PILE), (0.1, 0.15, 1.0, 0.65))
    assert heads["material_piling"].probability(pile) > 0.8
    assert heads["material_piling"].probability(street) < 0.5 and heads["material_piling"].probability(clean) < 0.5
    laundry = cv2.imread(str(media_dir / "laundry/A01_rome_laundry_lines_across_street.jpg"))
    lines = embedding(embedder, laundry, (0.0, 0.0, 1.0, 0.7))
    assert heads["street_drying"].probability(lines) > 0.5 > heads["material_piling"].probability(lines)


# ------------------------------------------------------------------------------------------- the rules
def sighting(track_id: int, at: float) -> SceneSighting:
    track = Track(track_id, SCENE_CLASS, 0.9, (0.1, 0.15, 1.0, 0.65), at, at, (0.1, 0.15, 1.0, 0.65))
    return SceneSighting("material_piling", "z-walk", track, "abc123abc123")


def test_a_zone_state_owns_its_scenario_in_its_zone():
    zone = ZoneArea("z-walk", "no_piling", tuple(tuple(p) for p in ZONE))
    owned = frozenset({("material_piling", "z-walk")})
    rules = CameraRules("cam", [zone], [PILING], lost_after_s=10, scene_owned=owned)
    region = Track(7, "static_object", 0.9, (0.3, 0.3, 0.5, 0.6), 0.0, 0.0, (0.3, 0.3, 0.5, 0.6))
    kinds = []
    for t in range(0, 60):
        scenes = [sighting(1_000_000, 0.0)] if t < 40 else []
        kinds += [(e.kind, e.violation.track.class_name, e.violation.model_hash)
                  for e in rules.step(Frame(float(t), [region], [region], scenes=scenes))]
    assert kinds == [("start", SCENE_CLASS, "abc123abc123"), ("end", SCENE_CLASS, "abc123abc123")]


# ------------------------------------------------------------------------------------------- per-spot heads
@pytest.mark.model
def test_a_spot_head_trains_from_labelled_crops_and_takes_over(embedder, media_dir, tmp_path):
    photo = cv2.imread(str(media_dir / PILE_PHOTO))
    height, width = photo.shape[:2]
    crops = []
    for shift in range(6):  # six slightly different crops of the zone, with the pile and painted out
        dx = int(width * 0.01 * shift)
        zone = (slice(int(0.15 * height), int(0.65 * height)), slice(int(0.1 * width) - dx, width - dx))
        crops += [LabelledCrop(photo[zone], True), LabelledCrop(painted_out(photo, PILE)[zone], False)]
    head, report = train_spot(crops, embedder, "material_piling")
    assert report.label_counts == {"present": 6, "absent": 6} and report.ready
    assert report.accuracy == 1.0 and report.precision == 1.0 and report.recall == 1.0
    assert report.model_hash == head.model_hash and len(head.model_hash) == 12
    path = spot_file(tmp_path, "cam-pile", "z-walk", "material_piling")
    save_spot(path, head)
    loaded = load_spot(path, "material_piling")
    assert loaded.model_hash == head.model_hash and loaded.about["label_counts"] == {"present": 6, "absent": 6}
    generic = LinearHead("material_piling", np.zeros(1024, np.float32), -5.0)  # would never say present
    watcher = SceneWatcher.build("cam-pile", [ZoneArea("z-walk", "no_piling", tuple(tuple(p) for p in ZONE))],
                                 [PILING], embedder, {"material_piling": generic}, SceneSettings(), tmp_path)
    assert watcher is not None and watcher.watched[0].source == "spot"
    assert [bool(watcher.step(photo, float(t))) for t in range(0, 15, 5)] == [False, False, True]


def test_a_spot_head_reports_what_it_lacks():
    rng = np.random.default_rng(1)
    features = np.array([rng.normal(1, 0.3, 16) for _ in range(3)] + [rng.normal(-1, 0.3, 16) for _ in range(2)])
    _, report = fit_spot(features, [True, True, True, False, False], "illegal_ads")
    assert report.label_counts == {"present": 3, "absent": 2} and not report.ready
    assert report.accuracy is not None  # two of each label: cross-validated in two folds
    with pytest.raises(ValueError, match="needs crops of both labels"):
        fit_spot(features[:3], [True, True, True], "illegal_ads")


def test_without_the_model_files_the_classifiers_are_off_with_one_line(tmp_path):
    settings = DetectorSettings(weights=str(tmp_path / "yolo.tflite"))
    loaded = load_classifiers(settings, [PILING])
    assert loaded.embedder is None and len(loaded.lines) == 1
    assert "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite not found" in loaded.lines[0]
    assert Classifiers().watcher("cam", [], [PILING]) is None
