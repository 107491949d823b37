"""Stalls by the mobile_vendor scene head (issue 10): the COCO model boxes no chair, table or umbrella at a
stall, so a no_vending zone's state decides, from its crop's embedding (``models/scene_heads.npz``).

Real model, real classifiers, real photos held as still cameras. The shipped head learnt from crops of these
photos (``models/scene_labels.yaml``), so this shows the pipeline's path and guards the head against a
regression; how it does on photos it never saw is the held-out figure in models/README.md, not this.

* the Kenting night-market stalls (``vendors/C04``), the zone around the near left stalls: one start, by the
  scene head, with no second look;
* the pedestrian shopping street (people walking, a man wheeling a bicycle), the whole view a no_vending zone:
  nothing.
"""
from __future__ import annotations

import cv2
import pytest

from detector.pipeline import Pipeline, run_offline
from detector.sources import Frame
from nonsite.config import Camera

EPOCH = 1_800_000_000.0


def held(city, weights_path, image, polygon, seconds=40):
    from detector.inference import Detector

    camera = Camera(id="cam-v", name="v", source="x", location={"lat": 0, "lon": 0}, grid="G01",
                    zones=[{"id": "z-v", "kind": "no_vending", "polygon": polygon}])
    vendor = next(s for s in city.scenarios if s.id == "mobile_vendor").model_copy(update={"dwell_s": 10})
    assert vendor.scene is not None and vendor.scene.enabled  # shipped on
    settings = city.detector.model_copy(update={"weights": str(weights_path)})
    pipeline = Pipeline([camera], [vendor], settings, Detector.load(weights_path), None, report_missing=False)
    assert pipeline.cameras["cam-v"].scenes is not None
    frames = [Frame("cam-v", image, EPOCH + t, t) for t in range(seconds)]
    return pipeline, [e for e in run_offline(pipeline, frames) if e.kind == "start"]


@pytest.mark.model
def test_the_stalls_of_a_night_market_start_one_vendor(city, weights_path, media_dir):
    photo = cv2.imread(str(media_dir / "vendors/C04_taiwan_kenting_roadside_stalls_night.jpg"))
    pipeline, starts = held(city, weights_path, photo, [[0.0, 0.55], [0.28, 0.55], [0.28, 0.67], [0.0, 0.67]])
    assert [(e.scenario, e.zone_id, e.object_class) for e in starts] == [("mobile_vendor", "z-v", "scene")]
    assert starts[0].classifier.model.startswith("scene:")
    assert pipeline.classifiers.second_look.crops == 0  # the zone's head decided; no look at the zone


@pytest.mark.model
def test_a_pedestrian_street_is_no_vendor(city, weights_path, media_dir):
    capture = cv2.VideoCapture(str(media_dir / "cctv_pedestrian_shopping_street_elevated_04.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    pipeline, starts = held(city, weights_path, frame, [[0, 0], [1, 0], [1, 1], [0, 1]])
    assert starts == []
    watched = pipeline.cameras["cam-v"].scenes.watched[0]
    assert watched.probability is not None and watched.probability < 0.5 and not watched.state.present
