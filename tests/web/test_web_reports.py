"""Supervisor reports from the read model: a scripted month of cases gives the rates it implies."""
from __future__ import annotations

import csv
import io

import pytest

from web_harness import SCRIPT, WebHarness, expected_figures, publish_script, start_web

pytestmark = [pytest.mark.kafka]
OCTOBER = {"from": "2026-10-01", "to": "2026-10-31"}


@pytest.fixture(scope="module")
def web(kafka_bootstrap: str, city, tmp_path_factory) -> WebHarness:
    harness = start_web(city, kafka_bootstrap, tmp_path_factory.mktemp("evidence"))
    publish_script(harness)
    yield harness
    harness.stop()


def test_totals_are_what_the_script_implies(web: WebHarness) -> None:
    report = web.client("sup").get("/api/reports/summary", params={**OCTOBER, "by": "scenario"}).json()
    expected = expected_figures(SCRIPT)
    assert {k: report["total"][k] for k in expected} == expected
    assert report["total"]["closure_rate"] == 0.6667  # 6 closed of 9 due (10 filed, 1 false alarm)
    assert report["total"]["false_alarm_rate"] == 0.1


@pytest.mark.parametrize("by,group", [("scenario", "stray_dog"), ("grid", "G02"), ("officer", "O101"),
                                      ("camera", "cam-03")])
def test_each_grouping_counts_its_own_cases(web: WebHarness, by: str, group: str) -> None:
    report = web.client("sup").get("/api/reports/summary", params={**OCTOBER, "by": by}).json()
    row = next(r for r in report["rows"] if r["group"] == group)
    mine = [c for c in SCRIPT if getattr(c, {"scenario": "scenario", "grid": "grid", "officer": "officer",
                                              "camera": "camera"}[by]) == group]
    expected = expected_figures(mine)
    assert {k: row[k] for k in expected} == expected
    assert sum(r["filed"] for r in report["rows"]) == len(SCRIPT)


def test_the_date_range_is_respected(web: WebHarness) -> None:
    early = web.client("sup").get("/api/reports/summary", params={"from": "2026-10-01", "to": "2026-10-04"}).json()
    assert early["total"]["filed"] == sum(c.day <= 4 for c in SCRIPT)
    none = web.client("sup").get("/api/reports/summary", params={"from": "2026-09-01", "to": "2026-09-30"}).json()
    assert none["total"]["filed"] == 0 and none["total"]["closure_rate"] is None


def test_daily_trend_and_its_chart(web: WebHarness) -> None:
    client = web.client("sup")
    days = client.get("/api/reports/daily", params={"from": "2026-10-01", "to": "2026-10-07"}).json()
    assert [d["day"] for d in days] == [f"2026-10-0{i}" for i in range(1, 8)]
    assert [d["filed"] for d in days] == [sum(c.day == i for c in SCRIPT) for i in range(1, 8)]
    svg = client.get("/api/reports/trend.svg", params={"from": "2026-10-01", "to": "2026-10-07"})
    assert svg.headers["content-type"] == "image/svg+xml"
    assert svg.text.startswith("<svg") and svg.text.count('class="bar"') == 7 and 'class="rate"' in svg.text


def test_ranking_does_not_crown_a_small_sample(web: WebHarness) -> None:
    ranking = web.client("sup").get("/api/reports/ranking", params={**OCTOBER, "by": "officer",
                                                                     "min_sample": 5}).json()
    assert ranking["min_sample"] == 5
    assert [r["group"] for r in ranking["ranked"]] == ["O101"] and ranking["ranked"][0]["rank"] == 1
    assert [(r["group"], r["due"]) for r in ranking["unranked"]] == [("O201", 4)]
    default = web.client("sup").get("/api/reports/ranking", params=OCTOBER).json()
    assert default["min_sample"] == 10 and default["ranked"] == []


def test_csv_export_matches_the_summary(web: WebHarness) -> None:
    answer = web.client("sup").get("/api/reports/summary.csv", params={**OCTOBER, "by": "grid"})
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="nonsite-grid-2026-10-01-2026-10-31.csv"' in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text.lstrip("\ufeff"))))
    assert [r["group"] for r in rows] == ["G01", "G02", "total"]
    assert float(rows[-1]["closure_rate"]) == expected_figures(SCRIPT)["closure_rate"]


def test_monthly_report(web: WebHarness) -> None:
    month = web.client("sup").get("/api/reports/monthly", params={"month": "2026-10"}).json()
    assert (month["from"], month["to"]) == ("2026-10-01", "2026-10-31")
    assert month["total"]["closure_rate"] == expected_figures(SCRIPT)["closure_rate"]
    assert {r["group"] for r in month["by_scenario"]} == {"stray_dog", "sidewalk_parking"}
    assert web.client("sup").get("/api/reports/monthly", params={"month": "2026-11"}).json()["total"]["filed"] == 0
