"""The three pages in real headless Chromium (Debian's package, driven by playwright):
the wall shows an incident produced to Kafka, an officer resolves a task with a photo and the
Feedback reaches Kafka (and the processor's answer shows), the report shows the scripted closure rate.

Each test saves its screenshots (web_harness.save_screenshot) into a temporary folder; ``make screenshots``
runs this module with ``--screenshots docs/screenshots`` to regenerate the README's."""
from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest

from web_harness import (SCRIPT, WebHarness, alert, camera_status, dispatched_case,
                         expected_figures, incident, log_in, publish_script, save_screenshot, start_web, stored_evidence,
                         street_jpeg)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def web(kafka_bootstrap: str, city, tmp_path_factory) -> WebHarness:
    harness = start_web(city, kafka_bootstrap, tmp_path_factory.mktemp("evidence"), outcome_wait_s=5.0)
    yield harness
    harness.stop()


def test_login_page_refuses_a_wrong_password(web: WebHarness, browser, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 700}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{web.base_url}/login")
    page.fill("#username", "ops")
    page.fill("#password", "wrong")
    page.click("#submit")
    page.wait_for_selector("#error:has-text('登录失败')")
    page.wait_for_selector("#demo:has-text('ops (operator / ops-demo)')")
    assert "/login" in page.url
    page.fill("#password", "")
    page.locator("#error").evaluate("e => e.textContent = ''")
    save_screenshot(page, shots, "login")
    context.close()


def test_wall_shows_a_new_incident_from_kafka_and_reassigns(web: WebHarness, browser, shots: Path) -> None:
    now = datetime.now(timezone.utc)
    backdrop = [
        incident(camera_id="cam-03", scenario="mobile_vendor", grid_id="G02", officer_id="O201",
                 evidence=[stored_evidence(web, "vendor")], first_seen=now - timedelta(minutes=50),
                 deadline=now - timedelta(minutes=5)),
        incident(camera_id="cam-02", scenario="sidewalk_parking", state="ACCEPTED", officer_id="O102",
                 evidence=[stored_evidence(web, "car")], first_seen=now - timedelta(minutes=8),
                 deadline=now + timedelta(minutes=22), plate="京A88731"),
        incident(camera_id="cam-04", scenario="road_occupation", grid_id="G02", state="ESCALATED",
                 officer_id="O202", evidence=[stored_evidence(web, "stall")], first_seen=now - timedelta(hours=2)),
    ]
    web.publish("incidents", *backdrop)
    web.publish("camera_status", camera_status("cam-01", "online"), camera_status("cam-03", "online"),
                camera_status("cam-04", "online"), camera_status("cam-02", "offline", "rtsp timeout"))
    page = log_in(browser, web.base_url, "ops")
    assert page.url.endswith("/wall")
    page.wait_for_selector("#conn:has-text('live')")
    page.wait_for_selector(f"article[data-id='{backdrop[2].incident_id}']")
    assert page.inner_text(f"article[data-id='{backdrop[1].incident_id}'] .plate") == "京A88731"

    case = incident(camera_id="cam-01", scenario="stray_dog", officer_id="O101",
                    evidence=[stored_evidence(web, "dog")], first_seen=datetime.now(timezone.utc))
    sent = time.monotonic()
    web.publish("incidents", case)
    web.publish("alerts", alert("new_incident", "新案件 流浪犬 城关路口 new stray dog case", case.incident_id))
    card = page.wait_for_selector(f"article[data-id='{case.incident_id}']", timeout=5000)
    latency = time.monotonic() - sent
    print(f"wall latency Kafka -> visible card: {latency * 1000:.0f} ms")
    assert latency < 1.0, f"the incident appeared on the wall {latency:.3f}s after reaching Kafka"
    text = card.inner_text()
    assert "流浪犬" in text and "城关路口 Chengguan crossing" in text and "张伟 Zhang Wei" in text and "left" in text
    assert page.locator(f"article[data-id='{case.incident_id}'] img").evaluate("img => img.complete && img.naturalWidth") > 0

    assert "urgent" in page.get_attribute(f"article[data-id='{backdrop[2].incident_id}']", "class")
    assert "urgent" in page.get_attribute(f"article[data-id='{backdrop[0].incident_id}']", "class")
    page.wait_for_selector("li[data-camera='cam-02'][data-state='offline']")
    page.wait_for_selector("li[data-camera='cam-01'][data-state='online']")

    page.select_option("#f-grid", "G02")
    assert page.locator(f"article[data-id='{case.incident_id}']").count() == 0
    page.select_option("#f-grid", "")
    page.select_option("#f-scenario", "stray_dog")
    assert page.locator("article.card").count() == 1
    page.select_option("#f-scenario", "")
    save_screenshot(page, shots, "wall")

    page.click(f"article[data-id='{case.incident_id}'] button.reassign")
    page.select_option("#ra-officer", "O102")
    page.fill("#ra-reason", "李娜更近 Li Na is closer")
    page.click("#ra-ok")
    feedback = web.next_feedback(incident_id=case.incident_id, action="reassign")
    assert feedback.target_officer == "O102" and feedback.actor == "U001"
    web.reply(feedback, applied=True, from_state="DISPATCHED", to_state="DISPATCHED",
              incident=msgspec.structs.replace(case, officer_id="O102",
                                               updated_at=datetime.now(timezone.utc).isoformat()))
    page.wait_for_selector("#result.applied:has-text('已受理')")
    page.wait_for_selector(f"article[data-id='{case.incident_id}']:has-text('李娜 Li Na')")


def test_officer_resolves_a_task_with_a_photo(web: WebHarness, browser, shots: Path) -> None:
    other, other_task = dispatched_case(web, "O201", camera_id="cam-03", grid_id="G02")
    older, older_task = dispatched_case(web, "O101", scenario="sidewalk_parking", camera_id="cam-02",
                               evidence=[stored_evidence(web, "car")], plate="沪B12345",
                               first_seen=datetime.now(timezone.utc) - timedelta(minutes=20))
    case, task = dispatched_case(web, "O101", evidence=[stored_evidence(web, "dog")], first_offence=True,
                                 state="ARRIVED")
    page = log_in(browser, web.base_url, "zhangwei", phone=True)
    assert page.url.endswith("/officer")
    page.wait_for_selector(f"article[data-task='{task.task_id}']")
    assert page.locator(f"article[data-task='{other_task.task_id}']").count() == 0
    order = page.locator("article[data-task]").evaluate_all("cards => cards.map(c => c.dataset.task)")
    assert order.index(task.task_id) < order.index(older_task.task_id)
    assert page.inner_text(f"article[data-task='{older_task.task_id}'] .plate") == "沪B12345"
    save_screenshot(page, shots, "officer-tasks")

    page.click(f"article[data-task='{task.task_id}'] a")
    page.wait_for_selector("#detail h2:has-text('流浪犬')")
    assert "城关镇解放路12号" in page.inner_text("#detail") and "首违不罚" in page.inner_text("#detail")
    photo = street_jpeg("after: clear")
    page.set_input_files("#photo", files=[{"name": "after.jpg", "mimeType": "image/jpeg", "buffer": photo}])
    page.fill("#note", "已将犬只交收容所 dog taken to the shelter")
    page.click("#do-resolve")
    feedback = web.next_feedback(incident_id=case.incident_id, action="resolve")
    assert feedback.task_id == task.task_id and feedback.actor == "O101"
    assert feedback.note == "已将犬只交收容所 dog taken to the shelter"
    assert [e.sha256 for e in feedback.evidence] == [hashlib.sha256(photo).hexdigest()]
    web.reply(feedback, applied=True, from_state="ARRIVED", to_state="RESOLVED",
              incident=msgspec.structs.replace(case, state="RESOLVED",
                                               updated_at=datetime.now(timezone.utc).isoformat()))
    page.wait_for_selector("#result.applied:has-text('已处置 Resolved')", timeout=10000)
    page.wait_for_selector("#state:has-text('已处置')")
    page.wait_for_selector("#waiting:visible")
    save_screenshot(page, shots, "officer-task", full_page=True)

    # a refused action shows its reason at once
    page.click("#do-accept")
    feedback = web.next_feedback(incident_id=case.incident_id, action="accept")
    web.reply(feedback, applied=False, from_state="RESOLVED", to_state="ACCEPTED",
              reason="illegal transition RESOLVED -> ACCEPTED")
    page.wait_for_selector("#result.refused:has-text('illegal transition RESOLVED -> ACCEPTED')")


def test_report_page_shows_the_scripted_closure_rate(web: WebHarness, browser, shots: Path) -> None:
    publish_script(web)
    expected = expected_figures(SCRIPT)
    page = log_in(browser, web.base_url, "sup")
    assert page.url.endswith("/reports")
    page.goto(f"{web.base_url}/reports?from=2026-10-01&to=2026-10-31&by=scenario")
    page.wait_for_selector("#total")
    shown = page.inner_text("#total td.closure")
    assert shown == f"{expected['closure_rate'] * 100:.1f}%" == "66.7%"
    page.wait_for_selector("#trend svg polyline.rate")
    page.wait_for_selector("#min-sample:has-text('10')")
    assert "O101" not in page.inner_text("#ranking")  # nobody ranked on a handful of cases
    assert "张伟 Zhang Wei (5)" in page.inner_text("#unranked")
    page.wait_for_selector("#repeat th")  # the repeat-offenders table (no plated cases in October)
    csv_href = page.get_attribute("#csv", "href")
    assert csv_href.startswith("/api/reports/summary.csv?from=2026-10-01&to=2026-10-31")
    save_screenshot(page, shots, "reports", full_page=True)

    page.click("#monthly")
    page.wait_for_selector("#headline")
    headline = page.inner_text("#headline")
    assert "结案率 66.7%" in headline and f"按期结案率 {expected['on_time_rate'] * 100:.1f}%" in headline
    save_screenshot(page, shots, "monthly", full_page=True)


def test_no_page_breaks_a_rule_of_the_content_security_policy(web: WebHarness, browser) -> None:
    """Every page, used as its role uses it, with the app's security headers: no script or style blocked."""
    violations: list[str] = []
    visits = {"ops": ["/login", "/wall", "/docs"], "sup": ["/reports", "/reports/monthly?month=2026-10"],
              "zhangwei": ["/officer"]}
    dispatched_case(web, "O101", evidence=[stored_evidence(web, "policy")])
    for username, paths in visits.items():
        page = log_in(browser, web.base_url, username)
        page.on("console", lambda message: violations.append(message.text)
                if "Content Security Policy" in message.text else None)
        for path in paths:
            page.goto(f"{web.base_url}{path}")
            page.wait_for_load_state("load")
            page.wait_for_timeout(400)
            assert page.evaluate("typeof esc") == "function", path  # the shared script ran
        page.context.close()
    assert violations == []
    page = log_in(browser, web.base_url, "ops")  # the check itself works: an inline script is reported
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.x = 1'; "
                  "document.body.append(s); }")
    page.wait_for_timeout(300)
    assert len(violations) == 1 and page.evaluate("typeof window.x") == "undefined"
    page.context.close()
