"""The second look (issue 10, item 2): the ImageNet classifier's look at a candidate's crop before its start,
on real crops through the real pipeline, and its configuration checked with one-line errors.

* rescue: the curled stray dog of ``dogs/G03`` shrunk to 0.3 of its size on a 1280x720 grey frame (as a far
  camera sees it) is boxed ``teddy bear`` by the COCO model, never ``dog``; the second look names a dog breed;
* confirm: the first frame of the pedestrian-street CCTV clip, held, has a man walking a bicycle (boxed
  ``bicycle`` beside a ``person``): a "mobile vendor" without the second look, none with it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from contract import Detection
from detector.classify.loading import Classifiers, load_classifiers
from detector.classify.second_look import ImageNetLabels, SecondLook
from detector.pipeline import Pipeline, run_offline
from detector.sources import Frame as CameraFrame
from nonsite.config import Camera, ConfigError, Scenario, load_city

from conftest import PROJECT

STREET_CLIP = "cctv_pedestrian_shopping_street_elevated_04.mp4"


def scenario(city, scenario_id: str, **changes) -> Scenario:
    found = next(s for s in city.scenarios if s.id == scenario_id)
    return found.model_copy(update=changes)


def camera(zones=()) -> Camera:
    return Camera(id="cam-look", name="look", source="x", location={"lat": 0, "lon": 0}, grid="G01",
                  zones=list(zones))


def far_dog(media_dir: Path) -> np.ndarray:
    photo = cv2.imread(str(media_dir / "dogs/G03_stray_dog_curled_on_paved_sidewalk.png"))
    small = cv2.resize(photo, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)
    frame = np.full((720, 1280, 3), 110, np.uint8)
    frame[:small.shape[0], :small.shape[1]] = small
    return frame


def held(image: np.ndarray, seconds: int) -> list[CameraFrame]:
    return [CameraFrame("cam-look", image, float(t), t) for t in range(seconds)]


@pytest.fixture(scope="module")
def detector(weights_path):
    from detector.inference import Detector

    return Detector.load(weights_path)


@pytest.mark.model
def test_a_far_dog_boxed_as_a_teddy_bear_is_rescued(city, weights_path, detector, media_dir):
    frame = far_dog(media_dir)
    assert {d.class_name for d in detector.detect([frame])[0]} == {"teddy bear"}
    dogs = [scenario(city, "stray_dog", dwell_s=10)]
    settings = city.detector.model_copy(update={"weights": str(weights_path)})
    with_look = Pipeline([camera()], dogs, settings, detector, None, report_missing=False)
    assert with_look.classifiers.second_look is not None
    events = list(run_offline(with_look, held(frame, 20)))
    assert [(e.kind, e.scenario, e.object_class) for e in events] == [("start", "stray_dog", "teddy_bear")]
    verdict = with_look.cameras["cam-look"].rules.open_violations()[0].verdict
    assert verdict.agrees and verdict.score >= 0.5 and verdict.label == "bloodhound"
    assert verdict.model == "7aad0c74c5e3"  # the classifier's sha256, as the README of the shared models gives it
    assert events[0].classifier.model == "second_look:7aad0c74c5e3" and events[0].classifier.label == "bloodhound"
    assert Detection.from_json(events[0].to_json()) == events[0]  # it crosses Kafka as it is
    without = Pipeline([camera()], dogs, settings, detector, None, report_missing=False, classifiers=Classifiers())
    assert list(run_offline(without, held(frame, 20))) == []


@pytest.mark.model
def test_a_man_walking_a_bicycle_is_no_vendor_with_the_second_look(city, weights_path, detector, media_dir):
    capture = cv2.VideoCapture(str(media_dir / STREET_CLIP))
    ok, frame = capture.read()
    capture.release()
    assert ok
    street = camera([{"id": "z-street", "kind": "no_vending", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}])
    # the zone's scene head off: with it, the zone's state owns mobile_vendor there and no prop is looked at
    vendors = [scenario(city, "mobile_vendor", dwell_s=10, scene=None)]
    settings = city.detector.model_copy(update={"weights": str(weights_path)})
    without = Pipeline([street], vendors, settings, detector, None, report_missing=False, classifiers=Classifiers())
    alarms = [e for e in run_offline(without, held(frame, 20)) if e.kind == "start"]
    assert alarms and {e.object_class for e in alarms} == {"bicycle"}  # the false alarm of the issue
    with_look = Pipeline([street], vendors, settings, detector, None, report_missing=False)
    assert list(run_offline(with_look, held(frame, 41))) == []
    rules = with_look.cameras["cam-look"].rules
    verdicts = [v.verdict for v in rules.pending() if v.verdict is not None]
    assert verdicts and not any(v.agrees for v in verdicts)
    assert with_look.classifiers.second_look.crops == 2 * len(verdicts)  # declined at 10 s, looked again at 40 s


@pytest.mark.model
def test_parked_bicycles_are_not_confirmed_as_a_vendor(city, weights_path, media_dir):
    model = weights_path.parent / "mobilenet_v2_1.0_224_quant.tflite"
    look = SecondLook.load(model, weights_path.parent / "imagenet_labels.txt", city.scenarios)
    photo = cv2.imread(str(media_dir / "parking_scooters_on_sidewalk_amsterdam_02.jpg"))
    for box in [(0.899, 0.38, 1.0, 0.642), (0.773, 0.366, 0.995, 0.559)]:  # the model's two bicycle boxes
        verdict = look.verdict("mobile_vendor", photo, box)
        assert not verdict.agrees and verdict.top in ("bicycle-built-for-two", "mountain bike")


# ------------------------------------------------------------------------------------------- configuration
def test_the_labels_of_a_rule_are_checked_against_the_classifier():
    labels = ImageNetLabels(["background"] + [f"class {i}, synonym {i}" for i in range(1000)])
    assert labels.indices(["151-153", "synonym 7"], "stray_dog") == [8, 152, 153, 154]
    with pytest.raises(ConfigError, match=r"^scenario 'stray_dog': second_look.labels\[1\]: '151-1000' is no range"):
        labels.indices(["class 1", "151-1000"], "stray_dog")
    with pytest.raises(ConfigError, match=r"second_look.labels\[0\]: 'barow' is no ImageNet class name$"):
        labels.indices(["barow"], "stray_dog")


@pytest.mark.parametrize("rule, message", [
    ({"mode": "rescue", "labels": ["151-268"]}, "second_look.rescue_classes: mode 'rescue' needs the model classes"),
    ({"mode": "confirm"}, "second_look.labels: mode 'confirm' needs at least one ImageNet label"),
    ({"mode": "confirm", "labels": ["barrow"], "rescue_classes": ["cat"]}, "only mode 'rescue' rescues classes"),
    ({"mode": "rescue", "labels": ["151-268"], "rescue_classes": ["dog"]},
     "a class of the scenario's own is no rescue"),
    ({"mode": "maybe", "labels": ["barrow"]}, "second_look.mode: Input should be 'confirm', 'rescue' or 'off'"),
])
def test_a_wrong_second_look_is_refused_with_one_line(tmp_path, rule, message):
    folder = tmp_path / "configs"
    shutil.copytree(PROJECT / "configs", folder)
    scenarios = yaml.safe_load((folder / "scenarios.yaml").read_text(encoding="utf-8"))
    dog = next(s for s in scenarios["scenarios"] if s["id"] == "stray_dog")
    dog["second_look"] = rule
    (folder / "scenarios.yaml").write_text(yaml.safe_dump(scenarios, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_city(folder)
    index = [s["id"] for s in scenarios["scenarios"]].index("stray_dog")
    assert str(error.value).startswith(f"{folder / 'scenarios.yaml'}: scenarios[{index}].")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_scene_classifier_needs_zones():
    with pytest.raises(ValidationError, match="a scene classifier watches zones: the scenario needs zone_kinds"):
        Scenario(id="x", label_zh="x", label_en="x", classes=["pile"], scene={"enabled": True})


def test_an_unknown_label_in_the_shipped_config_stops_the_detector_at_start(city, weights_path):
    dogs = scenario(city, "stray_dog")
    wrong = dogs.model_copy(update={"second_look": dogs.second_look.model_copy(update={"labels": ["dachshnd"]})})
    settings = city.detector.model_copy(update={"weights": str(weights_path)})
    with pytest.raises(ConfigError, match="^scenario 'stray_dog': second_look.labels\\[0\\]: 'dachshnd' is no"):
        load_classifiers(settings, [wrong])
