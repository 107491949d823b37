"""Supervisor reports from the read model: a scripted month of cases gives the rates it implies."""
from __future__ import annotations

import csv
import io

import pytest

from datetime import datetime, timedelta, timezone

from contract import new_id
from nonsite.privacy import plate_key
from web_harness import count_rows, SCRIPT, WebHarness, expected_figures, incident, publish_script, start_web, task_for

pytestmark = [pytest.mark.kafka]
OCTOBER = {"from": "2026-10-01", "to": "2026-10-31"}
AUGUST = {"from": "2026-08-01", "to": "2026-08-31"}
# plated cases in August 2026 (away from the scripted October): plate, scenario, day, state
PLATED = [("京A88731", "sidewalk_parking", 3, "CLOSED"), ("京A88731", "sidewalk_parking", 9, "DISPATCHED"),
          ("京A88731", "stray_dog", 20, "CLOSED"), ("沪B12345", "sidewalk_parking", 4, "CLOSED"),
          ("粤C99999", "sidewalk_parking", 5, "REJECTED"), ("粤C99999", "sidewalk_parking", 6, "CLOSED")]
PLATES = sorted({p for p, *_ in PLATED})


def publish_plated(harness: WebHarness) -> None:
    for index, (plate, scenario, day, state) in enumerate(PLATED):
        seen = datetime(2026, 8, day, 2, index, tzinfo=timezone.utc)
        record = incident(camera_id="cam-03", scenario=scenario, grid_id="G02", state=state, first_seen=seen,
                          officer_id="O201", task_id=new_id(), updated_at=seen + timedelta(minutes=20), plate=plate)
        harness.publish("incidents", record)
        harness.publish("tasks", task_for(record, "O201"))
    harness.wait_for(lambda: count_rows(harness, "tasks") >= len(SCRIPT) + len(PLATED), what="plated cases recorded")


@pytest.fixture(scope="module")
def web(kafka_bootstrap: str, city, tmp_path_factory) -> WebHarness:
    harness = start_web(city, kafka_bootstrap, tmp_path_factory.mktemp("evidence"))
    publish_script(harness)
    publish_plated(harness)
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


def test_repeat_offenders_are_counted_by_plate_key_never_by_plate(web: WebHarness) -> None:
    answer = web.client("sup").get("/api/reports/repeat-offenders", params=AUGUST)
    assert answer.status_code == 200
    report = answer.json()
    assert (report["from"], report["to"], report["min_incidents"]) == ("2026-08-01", "2026-08-31", 2)
    # 粤C99999's false alarm does not count, so it has one case; 沪B12345 has one
    assert [(r["plate_key"], r["incidents"], r["scenarios"]) for r in report["rows"]] == [
        (plate_key("京A88731"), 3, ["sidewalk_parking", "stray_dog"])]
    assert not any(plate in answer.text for plate in PLATES)
    assert web.client("ops").get("/api/reports/repeat-offenders",
                                 params={**AUGUST, "min_incidents": 3}).json()["rows"][0]["incidents"] == 3
    assert web.client("sup").get("/api/reports/repeat-offenders", params=OCTOBER).json()["rows"] == []
    assert web.client("zhangwei").get("/api/reports/repeat-offenders", params=AUGUST).status_code == 403


def test_reports_and_exports_hold_no_plate_text(web: WebHarness) -> None:
    client = web.client("sup")
    bodies = [client.get(f"/api/reports/{path}", params={**AUGUST, "by": by}).text
              for path in ("summary", "summary.csv") for by in ("scenario", "grid", "officer", "camera")]
    bodies += [client.get("/api/reports/daily", params=AUGUST).text,
               client.get("/api/reports/trend.svg", params=AUGUST).text,
               client.get("/api/reports/ranking", params=AUGUST).text,
               client.get("/api/reports/monthly", params={"month": "2026-08"}).text]
    assert sum(r["filed"] for r in client.get("/api/reports/summary", params=AUGUST).json()["rows"]) == len(PLATED)
    for body in bodies:
        assert not any(plate in body for plate in PLATES)
