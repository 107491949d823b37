"""The quality benchmark, ``nonsite eval`` (issue 10, item 7; docs/quality.md).

Unit tests of the labels, the playback and the matching rule; a check that ``bench/quality/labels.yaml``
labels every real photo and video in the shared media folder; and ``nonsite eval`` run end to end on
three real files with the counts they are known to give: the black car parked across the tiled sidewalk
(``parking/E04``) starts once after its dwell; the stray dog of the Indian lane (``dogs/G05``) is missed,
the boy with his cart being within ``companion_distance`` of it; the dog beside the person walking it
(``person.jpg``) starts nothing.
"""
from __future__ import annotations

import doctest
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import PROJECT
from detector.evaluation.command import chosen
from detector.evaluation.labels import (Defaults, Expected, LabelsError, check_scenarios, load_labels,
                                        parse_labels)
from detector.evaluation.report import scenario_table
from detector.evaluation.run import looped_frames, still_frames
from detector.evaluation.scoring import Observed, Score, score_file, score_group, total
from detector.samples import write_video
from detector.sources import IMAGE_SUFFIXES
from nonsite.config import City
from nonsite.errors import CommandError

LABELS = PROJECT / "bench" / "quality" / "labels.yaml"
NONSITE = [sys.executable, "-c", "import sys; from nonsite.cli import main; sys.exit(main())"]
PARK, DOG = "sidewalk_parking", "stray_dog"


def start(scenario: str, zone: str, violation: str) -> Observed:
    return Observed("start", scenario, zone, violation)


def end(scenario: str, zone: str, violation: str) -> Observed:
    return Observed("end", scenario, zone, violation)


# ------------------------------------------------------------------------------------------- matching
def test_a_start_matches_when_scenario_and_zone_agree():
    expected = [Expected(scenario=PARK, zone="z-a")]
    assert score_file(expected, [start(PARK, "z-a", "v1")])[PARK].true_positives == 1
    elsewhere = score_file(expected, [start(PARK, "z-b", "v1")])[PARK]  # right scenario, another zone
    assert (elsewhere.true_positives, elsewhere.false_positives, elsewhere.false_negatives) == (0, 1, 1)
    other = score_file(expected, [start("road_occupation", "z-a", "v1")])  # right zone, another scenario
    assert (other[PARK].false_negatives, other["road_occupation"].false_positives) == (1, 1)


def test_counts_per_zone_second_starts_are_false_positives_and_misses_false_negatives():
    score = score_group([Expected(scenario=PARK, zone="z", count=3)], starts=2, ends=0)
    assert (score.true_positives, score.false_positives, score.false_negatives) == (2, 0, 1)
    assert (score.precision, score.recall, score.starts_per_violation) == (1.0, 2 / 3, 1.0)
    van = score_group([Expected(scenario=PARK, zone="z")], starts=6, ends=0)  # one van, six starts
    assert (van.true_positives, van.false_positives, van.starts_per_violation, van.precision) == (1, 5, 6.0, 1 / 6)


def test_starts_where_nothing_is_expected_count_as_false_positives_only():
    score = score_group([], starts=2, ends=2)
    assert (score.false_positives, score.starts_where_expected, score.false_ends) == (2, 0, 0)
    assert (score.precision, score.recall, score.starts_per_violation) == (0.0, None, None)


def test_an_end_while_the_object_stays_is_false_one_per_leaving_object_is_not():
    assert score_group([Expected(scenario=PARK, zone="z", count=2)], starts=2, ends=1).false_ends == 1
    leaving = [Expected(scenario=PARK, zone="z", stays=False), Expected(scenario=PARK, zone="z", count=2)]
    assert score_group(leaving, starts=3, ends=1).false_ends == 0
    assert score_group(leaving, starts=3, ends=2).false_ends == 1


def test_a_scenario_that_applies_anywhere_matches_on_the_empty_zone():
    scores = score_file([Expected(scenario=DOG)], [start(DOG, "", "d1"), Observed("update", DOG, "", "d1")])
    assert (scores[DOG].true_positives, scores[DOG].starts) == (1, 1)


def test_nothing_to_divide_is_no_rate_and_totals_add_up():
    assert (Score().precision, Score().recall, Score().starts_per_violation) == (None, None, None)
    first = score_file([Expected(scenario=DOG)], [])
    second = score_file([Expected(scenario=DOG)], [start(DOG, "", "a"), start(DOG, "", "b"), end(DOG, "", "b")])
    summed = total([first, second])[DOG]
    assert (summed.expected, summed.true_positives, summed.false_positives, summed.false_negatives,
            summed.false_ends) == (2, 1, 1, 1, 1)
    assert scenario_table({DOG: summed}).splitlines()[1].split() == [DOG, "2", "1", "1", "1", "0.50", "0.50",
                                                                    "2.00", "1"]


# ------------------------------------------------------------------------------------------- labels
@pytest.mark.parametrize("raw, error", [
    ({"files": []}, "x.yaml: files: List should have at least 1 item"),
    ({"files": [{"path": "a.jpg", "colour": 1}]}, "x.yaml: files[0].colour: unknown field"),
    ({"files": [{"path": "a.jpg", "expect": [{"scenario": DOG, "zone": "z"}]}]},
     "x.yaml: files[0].expect[0].zone: no zone 'z' on this file"),
    ({"files": [{"path": "a.jpg", "play": {"loops": 2}}]}, "x.yaml: files[0].play.loops: a still is held"),
    ({"files": [{"path": "a.mp4", "play": {"hold_s": 20}}]}, "x.yaml: files[0].play.hold_s: a video is looped"),
    ({"files": [{"path": "a.jpg"}, {"path": "a.jpg"}]}, "x.yaml: files[1].path: duplicate file 'a.jpg'"),
    ({"files": [{"path": "a.jpg", "expect": [{"scenario": DOG}, {"scenario": DOG}]}]},
     "x.yaml: files[0].expect[1].scenario: duplicate expectation"),
    ({"files": [{"path": "a.jpg", "zones": [{"id": "z", "kind": "lawn", "polygon": [[0, 0], [1, 0], [1, 1]]}]}]},
     "x.yaml: files[0].zones[0].kind: Input should be"),
])
def test_a_labels_mistake_is_one_line_naming_the_field(raw, error):
    with pytest.raises(LabelsError) as caught:
        parse_labels(raw, "x.yaml")
    assert str(caught.value).startswith(error) and "\n" not in str(caught.value)


WALK = {"id": "z-walk", "kind": "sidewalk", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}


@pytest.mark.parametrize("expect, error", [
    ({"scenario": "littering", "zone": "z-walk"},
     "files[0].expect[0].scenario: unknown scenario 'littering' in scenarios.yaml"),
    ({"scenario": "road_occupation", "zone": "z-walk"},
     "files[0].expect[0].zone: 'road_occupation' needs a zone of kind storefront, got 'z-walk'"),
    ({"scenario": PARK}, "files[0].expect[0].zone: 'sidewalk_parking' needs a zone of kind sidewalk, got 'none'"),
    ({"scenario": DOG, "zone": "z-walk"}, "files[0].expect[0].zone: 'stray_dog' applies anywhere: give no zone"),
])
def test_an_expectation_the_scenarios_cannot_meet_is_refused(city: City, expect, error):
    labels = parse_labels({"files": [{"path": "a.jpg", "zones": [WALK], "expect": [expect]}]}, "x.yaml")
    with pytest.raises(LabelsError) as caught:
        check_scenarios(labels, city.scenarios, "x.yaml")
    assert str(caught.value) == f"x.yaml: {error}"


def test_play_defaults_and_the_loops_a_clip_needs():
    labels = parse_labels({"defaults": {"hold_s": 100, "interval_s": 2},
                           "files": [{"path": "a.png"}, {"path": "b.mp4"}, {"path": "c.mp4", "play": {"loops": 3}}]},
                          "x.yaml")
    still, clip, looped = labels.files
    assert (still.still, still.hold_s(labels.defaults), still.interval_s(labels.defaults)) == (True, 100, 2)
    assert (clip.still, clip.loops(labels.defaults, clip_s=33.0), looped.loops(labels.defaults, 33.0)) == (False, 4, 3)
    assert Defaults().hold_s == 700


def test_only_picks_files_by_path_and_names_a_text_that_matches_none():
    files = parse_labels({"files": [{"path": "dogs/a.png"}, {"path": "parking/b.jpg"}]}, "x.yaml").files
    assert [f.path for f in chosen(files, ["dogs/"])] == ["dogs/a.png"]
    assert chosen(files, None) == files
    with pytest.raises(CommandError, match="--only: no labelled file's path contains 'cats/'"):
        chosen(files, ["cats/"])


# ------------------------------------------------------------------------------------------- playback
def test_a_still_is_the_same_read_only_picture_every_interval():
    frames = list(still_frames(np.zeros((8, 8, 3), np.uint8), "q01", hold_s=10, interval_s=2.5, start_epoch=100))
    assert [f.timestamp for f in frames] == [100, 102.5, 105, 107.5]
    assert len({id(f.image) for f in frames}) == 1
    with pytest.raises(ValueError):
        frames[0].image[0, 0] = 1  # a stage writing into a held picture fails instead of changing every frame


def test_a_video_is_sampled_once_and_played_in_a_row_with_the_clock_running_on(tmp_path):
    shades = [np.full((16, 16, 3), 100 * i, np.uint8) for i in range(3)]
    video = write_video(tmp_path / "clip.mp4", [(image, 1.0) for image in shades], fps=1.0)
    frames = list(looped_frames(video, "q01", loops=2, interval_s=1.0, start_epoch=50))
    assert [f.timestamp for f in frames] == [50, 51, 52, 53, 54, 55]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4, 5]
    assert [round(f.image.mean() / 100) for f in frames] == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("name", ["detector.evaluation.labels", "detector.evaluation.scoring",
                                  "detector.evaluation.report", "detector.evaluation.run"])
def test_docstring_examples_hold(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


# ------------------------------------------------------------------------------------------- the shipped labels
def test_the_shipped_labels_label_every_real_photo_and_video(city: City, media_dir: Path):
    labels = load_labels(LABELS)
    check_scenarios(labels, city.scenarios, str(LABELS))
    media = sorted(str(p.relative_to(media_dir)) for p in media_dir.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + (".mp4",))
    assert sorted(f.path for f in labels.files) == media
    expected = {e.scenario for f in labels.files for e in f.expect}
    assert expected == {s.id for s in city.scenarios if s.enabled}  # every scenario has something to find


# ------------------------------------------------------------------------------------------- end to end
SMALL = {"defaults": {"hold_s": 200, "interval_s": 1}, "files": [
    {"path": "parking/E04_easypr_car_across_sidewalk.jpg",
     "zones": [{"id": "z-walk", "kind": "sidewalk",
                "polygon": [[0.30, 0.0], [0.78, 0.0], [0.95, 0.6], [1.0, 0.65], [1.0, 1.0], [0.0, 1.0],
                            [0.0, 0.55], [0.1, 0.55]]}],
     "expect": [{"scenario": PARK, "zone": "z-walk"}]},
    {"path": "dogs/G05_india_stray_dog_walking_street_people.jpg", "expect": [{"scenario": DOG}]},
    {"path": "person.jpg"}]}


@pytest.mark.model
@pytest.mark.slow
def test_nonsite_eval_on_three_real_files_prints_what_they_give(tmp_path, weights_path, media_dir):
    labels = tmp_path / "labels.yaml"
    labels.write_text(yaml.safe_dump(SMALL), encoding="utf-8")
    report = tmp_path / "report.json"
    run = subprocess.run(NONSITE + ["eval", str(labels), "--media", str(media_dir), "--json", str(report)],
                         cwd=PROJECT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "NONSITE_WEIGHTS": str(weights_path)})
    assert run.returncode == 0, run.stderr[-3000:]
    table = {line.split()[0]: line.split()[1:] for line in run.stdout.splitlines()
             if line.split() and line.split()[0] in (PARK, DOG, "all")}
    #                       expected TP  FP   FN   precision recall starts/violation false ends
    assert table[PARK] == ["1", "1", "0", "0", "1.00", "1.00", "1.00", "0"]
    assert table[DOG] == ["1", "0", "0", "1", "-", "0.00", "-", "0"]
    assert table["all"] == ["2", "1", "0", "1", "1.00", "0.50", "1.00", "0"]
    document = json.loads(report.read_text(encoding="utf-8"))
    assert [f["path"] for f in document["files"]] == [f["path"] for f in SMALL["files"]]
    car, dog, person = document["files"]
    assert [(e["kind"], e["scenario"], e["zone"], e["object"], e["at_s"]) for e in car["events"]] == \
        [("start", PARK, "z-walk", "car", 120.0)]
    assert dog["events"] == [] and person["events"] == []
    assert car["frames"] == 200 and car["inferred"] < car["frames"]  # the motion gate skips a held picture
    assert document["run_s"] > 0 and len(document["load_average_after"]) == 3
    assert "file evaluated" in run.stderr and "frame" in run.stderr  # structured log lines and the progress bar
