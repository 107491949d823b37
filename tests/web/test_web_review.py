"""The operator review queue (待审核) end to end: the real stream worker, the web app and real headless Chromium.

An alarm of a scenario under ``review: operator`` reaches the wall's review queue with its evidence and no
task; an operator's Confirm files it and the worker dispatches it (the officer's app shows the task); a
Dismiss (with a reason) ends it with no task, and the supervisors' report counts it as dismissed in review.
Only the detector is replaced by records produced to the detections topic."""
from __future__ import annotations

import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from contract import Detection, new_id, to_iso
from stream.domain.dedup import CityMap
from stream.domain.engine import incident_id_for
from web_harness import WebHarness, log_in, save_screenshot, stored_evidence, worker_and_web

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
USERNAMES = {"O101": "zhangwei", "O102": "lina", "O201": "wangqiang", "O202": "liuyang"}


@pytest.fixture(scope="module")
def system(kafka_bootstrap: str, tmp_path_factory):
    yield from worker_and_web(kafka_bootstrap, tmp_path_factory.mktemp("review"), "rv", outcome_wait_s=20.0,
                              tick_s=0.5, commit_interval_s=0.5)


def raise_alarm(web: WebHarness, scenario: str, camera: str, zone: str, label: str) -> str:
    """A detector's ``start`` with a real evidence picture; the id of the case the worker opens for it."""
    from kafka import KafkaProducer

    now = time.time()
    detection = Detection(event_id=new_id(), kind="start", violation_id=f"{camera}/{new_id()[:6]}/{scenario}",
                          camera_id=camera, scenario=scenario, zone_id=zone, object_class="static_object",
                          track_id=3, confidence=0.8, bbox=[0.2, 0.3, 0.6, 0.9], first_seen=to_iso(now - 400),
                          observed_at=to_iso(now), dwell_s=400.0, evidence=[stored_evidence(web, label)])
    producer = KafkaProducer(bootstrap_servers=web.city.kafka.bootstrap, acks="all")
    producer.send(web.city.kafka.topics.detections, detection.to_json(), key=camera.encode()).get(30)
    producer.close()
    return incident_id_for(CityMap.build(web.city).district_of_camera[camera], detection.event_id)


def awaiting(web: WebHarness, worker, incident_id: str) -> dict:
    ops = web.client("ops")
    return web.wait_for(lambda: (ops.get(f"/api/incidents/{incident_id}").json()
                                 if ops.get(f"/api/incidents/{incident_id}").status_code == 200 else None),
                        timeout=90, what=f"the worker's alarm {incident_id} on the wall\n{worker.log_tail()}")


def worker_metrics(worker) -> str:
    return urllib.request.urlopen(f"http://localhost:{worker.web_port}/metrics", timeout=10).read().decode()


def tasks_of(web: WebHarness, incident_id: str) -> list[dict]:
    return [t for officer in USERNAMES.values() for t in web.client(officer).get("/api/my/tasks").json()
            if t["incident_id"] == incident_id]


def test_confirm_in_the_wall_dispatches_the_case_to_an_officer(system, browser, shots: Path) -> None:
    web, worker = system
    incident_id = raise_alarm(web, "mobile_vendor", "cam-03", "z-footpath", "vendor cart")
    shown = awaiting(web, worker, incident_id)
    assert shown["state"] == "AWAITING_REVIEW" and shown["officer_id"] is None and shown["tasks"] == []
    assert [(h["action"], h["to_state"]) for h in shown["history"]] == [("detect", "AWAITING_REVIEW")]
    officer_view = web.client("wangqiang").get(f"/api/incidents/{incident_id}")
    assert officer_view.status_code == 403 and tasks_of(web, incident_id) == []  # no officer sees an alarm

    page = log_in(browser, web.base_url, "ops", height=900)
    card = f"#review-cards article[data-id='{incident_id}']"
    page.wait_for_selector(card, timeout=15000)
    assert page.locator(f"#cards article[data-id='{incident_id}']").count() == 0  # not among the cases
    page.wait_for_function("sel => { const img = document.querySelector(sel); return img && img.complete && "
                           "img.naturalWidth > 0; }", arg=f"{card} img", timeout=15000)  # the evidence, shown
    assert "待审核" in page.inner_text(card) and "流摊小贩" in page.inner_text(card)
    save_screenshot(page, shots, "wall-review")
    page.click(f"{card} button.confirm")
    page.wait_for_selector("#result.applied", timeout=30000)
    page.wait_for_selector(f"#cards article[data-id='{incident_id}'][data-state='DISPATCHED']", timeout=15000)
    assert page.locator(card).count() == 0

    case = web.client("ops").get(f"/api/incidents/{incident_id}").json()
    assert case["state"] == "DISPATCHED" and case["officer_id"] in ("O201", "O202")
    assert [h["action"] for h in case["history"]] == ["detect", "confirm", "dispatch"]
    assert case["history"][1]["actor"] == "U001"
    [task] = web.wait_for(lambda: tasks_of(web, incident_id), what="the task in the officer's list")
    phone = log_in(browser, web.base_url, USERNAMES[case["officer_id"]], phone=True)
    phone.wait_for_selector(f"article[data-task='{task['task_id']}']", timeout=15000)
    phone.context.close()
    page.context.close()

    again = web.client("ops").post(f"/api/incidents/{incident_id}/confirm", json={})
    assert again.status_code == 409 and "not awaiting review" in again.json()["error"]
    assert 'nonsite_stream_reviews_total{outcome="confirmed"} 1.0' in worker_metrics(worker)


def test_dismiss_in_the_wall_makes_no_task_and_the_report_counts_it(system, browser, shots: Path) -> None:
    web, worker = system
    incident_id = raise_alarm(web, "material_piling", "cam-03", "z-corner", "cardboard")
    awaiting(web, worker, incident_id)
    for username, status in (("sup", 403), ("zhangwei", 403)):
        refused = web.client(username).post(f"/api/incidents/{incident_id}/dismiss", json={"reason": "x"})
        assert refused.status_code == status, refused.text
    bare = web.client("ops").post(f"/api/incidents/{incident_id}/dismiss", json={"reason": "  "})
    assert bare.status_code == 422 and "reason" in bare.json()["error"]

    page = log_in(browser, web.base_url, "ops", height=900)
    card = f"#review-cards article[data-id='{incident_id}']"
    page.wait_for_selector(card, timeout=15000)
    page.click(f"{card} button.dismiss")
    page.click("#dm-ok")  # no reason yet: the dialog stays open
    assert page.locator("#dismiss").evaluate("d => d.open")
    page.fill("#dm-reason", "路边的纸箱是回收站的 cardboard waiting for the recycling pick-up")
    page.click("#dm-ok")
    page.wait_for_selector("#result.applied", timeout=30000)
    page.wait_for_selector(card, state="detached", timeout=15000)
    page.context.close()

    case = web.client("ops").get(f"/api/incidents/{incident_id}").json()
    assert case["state"] == "DISMISSED" and case["tasks"] == [] and case["officer_id"] is None
    dismissal = case["history"][-1]
    assert (dismissal["action"], dismissal["actor"], dismissal["applied"]) == ("dismiss", "U001", True)
    assert dismissal["reason"].startswith("路边的纸箱")
    time.sleep(1.5)  # a few of the worker's ticks: still no task
    assert tasks_of(web, incident_id) == []
    assert 'nonsite_stream_reviews_total{outcome="dismissed"} 1.0' in worker_metrics(worker)

    today = datetime.now(ZoneInfo(web.city.system.city.timezone)).date()
    span = {"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()}  # seen 400 s ago: maybe yesterday
    summary = web.client("sup").get("/api/reports/summary", params={**span, "by": "scenario"}).json()
    [piling] = [r for r in summary["rows"] if r["group"] == "material_piling"]
    assert (piling["dismissed_in_review"], piling["filed"], piling["false_alarms"]) == (1, 0, 0)
    report = log_in(browser, web.base_url, "sup", height=900)
    report.goto(f"{web.base_url}/reports?from={span['from']}&to={span['to']}&by=scenario")
    report.wait_for_selector("#total")
    assert report.inner_text("tr[data-group='material_piling'] td.dismissed") == "1"
    assert report.inner_text("#total td.dismissed") == str(summary["total"]["dismissed_in_review"])
    save_screenshot(report, shots, "reports-review", full_page=True)
    seen = datetime.fromtimestamp(time.time() - 400, ZoneInfo(web.city.system.city.timezone))
    month = web.client("sup").get("/api/reports/monthly", params={"month": f"{seen:%Y-%m}"}).json()
    assert month["total"]["dismissed_in_review"] >= 1
    report.goto(f"{web.base_url}/reports/monthly?month={seen:%Y-%m}")
    report.wait_for_selector("#headline")
    assert report.inner_text("#dismissed") == str(month["total"]["dismissed_in_review"])
    report.context.close()
