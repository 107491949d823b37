"""Evidence custody against the running app on the local Kafka: every view of an evidence file and every export
in the access log, which only supervisors read; legal holds placed and released by supervisors with a reason,
in the case's audit log; and after a retention purge, 410 Gone for a deleted file and the export saying so."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from contract import new_id
from history.retention import purge_case, purge_plan
from nonsite.evidence import EvidenceStore
from web_harness import WebHarness, dispatched_case, incident, now, start_web, stored_evidence, street_jpeg

pytestmark = [pytest.mark.kafka]
PEOPLE = {"ops": ("U001", "operator"), "sup": ("U002", "supervisor"), "zhangwei": ("O101", "officer")}


@pytest.fixture(scope="module")
def web(kafka_bootstrap: str, city, tmp_path_factory) -> WebHarness:
    harness = start_web(city, kafka_bootstrap, tmp_path_factory.mktemp("evidence"), outcome_wait_s=0.2)
    yield harness
    harness.stop()


def access_log(web: WebHarness, username: str = "sup", **params):
    return web.client(username).get("/api/access-log", params=params)


def local_today(web: WebHarness) -> str:
    return datetime.now(ZoneInfo(web.city.system.city.timezone)).date().isoformat()


# ------------------------------------------------------------------ the access log
def test_every_view_is_logged_with_role_case_and_reason(web: WebHarness) -> None:
    scene = stored_evidence(web, f"scene {new_id()[:6]}")
    case, _ = dispatched_case(web, "O101", evidence=[scene])
    for username in PEOPLE:
        reason = f"check by {username}"
        answer = web.client(username).get(f"/api/evidence/{scene.sha256}", params={"reason": reason})
        assert answer.status_code == 200 and hashlib.sha256(answer.content).hexdigest() == scene.sha256
        assert answer.headers["cache-control"] == "private, no-cache"
    assert web.client("lina").get(f"/api/evidence/{scene.sha256}").status_code == 403  # refused: not logged
    assert web.client("ops").get(f"/api/evidence/{'0' * 64}").status_code == 404  # no file: not logged
    rows = access_log(web, sha256=scene.sha256).json()
    assert rows["total"] == 3
    assert [(r["person_id"], r["role"], r["what"], r["target"], r["incident_id"], r["reason"])
            for r in rows["accesses"]] == [(*PEOPLE[u], "evidence", scene.sha256, case.incident_id, f"check by {u}")
                                           for u in reversed(PEOPLE)]  # newest first
    assert rows["accesses"][0]["name"] == "张伟 Zhang Wei"
    assert datetime.fromisoformat(rows["accesses"][0]["at"].replace("Z", "+00:00")) > now() - timedelta(minutes=1)


def test_exports_and_views_of_a_case_are_found_by_case(web: WebHarness) -> None:
    scene = stored_evidence(web, f"scene {new_id()[:6]}")
    case, _ = dispatched_case(web, "O101", evidence=[scene])
    assert web.client("zhangwei").get(f"/api/evidence/{scene.sha256}").status_code == 200
    assert web.client("ops").get(f"/api/incidents/{case.incident_id}/export.html",
                                 params={"reason": "行政复议 2026-117"}).status_code == 200
    found = access_log(web, case=case.incident_id).json()
    assert [(r["what"], r["person_id"], r["reason"]) for r in found["accesses"]] == [
        ("export", "U001", "行政复议 2026-117"), ("evidence", "O101", "")]
    assert [r["what"] for r in access_log(web, case=case.incident_id, what="export").json()["accesses"]] == ["export"]


def test_the_log_is_filtered_by_person_role_and_days_and_paged(web: WebHarness) -> None:
    scene = stored_evidence(web, f"scene {new_id()[:6]}")
    dispatched_case(web, "O101", evidence=[scene])
    for _ in range(3):
        assert web.client("sup").get(f"/api/evidence/{scene.sha256}").status_code == 200
    mine = access_log(web, person="U002", sha256=scene.sha256, per_page=2, page=2).json()
    assert (mine["total"], mine["page"], mine["per_page"], len(mine["accesses"])) == (3, 2, 2, 1)
    today, yesterday = local_today(web), (datetime.fromisoformat(local_today(web)) - timedelta(days=1)).date()
    assert access_log(web, sha256=scene.sha256, role="supervisor", **{"from": today, "to": today}).json()["total"] == 3
    assert access_log(web, sha256=scene.sha256, role="officer").json()["total"] == 0
    assert access_log(web, sha256=scene.sha256, to=yesterday.isoformat()).json()["total"] == 0
    assert access_log(web, sha256="ABC").json()["error"] == "sha256: expected 64 lowercase hex characters"
    assert access_log(web, **{"from": today, "to": yesterday.isoformat()}).status_code == 422


def test_only_supervisors_read_the_access_log(web: WebHarness) -> None:
    assert web.client().get("/api/access-log").status_code == 401
    for username in ("ops", "zhangwei"):
        refused = access_log(web, username)
        assert refused.status_code == 403 and refused.json()["error"].startswith("role '")
    assert access_log(web).status_code == 200


# ------------------------------------------------------------------ legal holds
def test_a_hold_needs_a_supervisor_and_a_reason_and_is_in_the_audit_log(web: WebHarness) -> None:
    case, task = dispatched_case(web, "O101")
    hold_path = f"/api/incidents/{case.incident_id}/hold"
    supervisor = web.client("sup")
    for body in ({}, {"reason": ""}, {"reason": "   "}):
        answer = supervisor.post(hold_path, json=body)
        assert answer.status_code == 422 and answer.json()["error"].startswith(("body.reason", "reason")), answer.text
    for username in ("ops", "zhangwei"):
        assert web.client(username).post(hold_path, json={"reason": "court"}).status_code == 403
    placed = supervisor.post(hold_path, json={"reason": "行政诉讼 (2027)浙0102行初12号"})
    assert placed.status_code == 201, placed.text
    assert placed.json() | {"held_at": None} == {
        "incident_id": case.incident_id, "in_force": True, "held_by": "U002", "held_at": None,
        "reason": "行政诉讼 (2027)浙0102行初12号", "released_by": None, "released_at": None, "release_reason": None,
        "step": 1}
    assert supervisor.post(hold_path, json={"reason": "again"}).status_code == 409
    assert supervisor.post(f"{hold_path}/release", json={"reason": ""}).status_code == 422
    released = supervisor.post(f"{hold_path}/release", json={"reason": "judgment final"})
    assert released.status_code == 200 and released.json()["released_by"] == "U002"
    assert supervisor.post(f"{hold_path}/release", json={"reason": "again"}).status_code == 409
    holds = supervisor.get(f"/api/incidents/{case.incident_id}/holds").json()["holds"]
    assert [(h["in_force"], h["reason"], h["release_reason"]) for h in holds] == [
        (False, "行政诉讼 (2027)浙0102行初12号", "judgment final")]
    history = web.client("ops").get(f"/api/incidents/{case.incident_id}").json()["history"]
    assert [(h["seq"], h["action"], h["actor"], h["from_state"], h["to_state"]) for h in history] == [
        (1, "legal_hold", "U002", "DISPATCHED", "DISPATCHED"),
        (2, "legal_hold_released", "U002", "DISPATCHED", "DISPATCHED")]
    officer_page = web.client("zhangwei").get(f"/api/tasks/{task.task_id}")  # the officer's page shows the steps
    assert officer_page.status_code == 200 and len(officer_page.json()["history"]) == 2
    assert supervisor.post(f"/api/incidents/{new_id()}/hold", json={"reason": "x"}).status_code == 404
    assert web.client("ops").get(f"/api/incidents/{case.incident_id}/holds").status_code == 403


# ------------------------------------------------------------------ after a purge
def old_closed_case(web: WebHarness, label: str, closed: datetime):
    picture = EvidenceStore(web.evidence_dir).put(street_jpeg(f"{label} {new_id()[:6]}"), "annotated")
    case = incident(state="CLOSED", first_seen=closed - timedelta(hours=1), updated_at=closed, evidence=[picture])
    web.publish("incidents", case)
    web.wait_for(lambda: web.app.state.store.incident(case.incident_id) is not None, what="the case recorded")
    return case, picture


def test_a_purged_file_is_gone_and_the_export_says_so(web: WebHarness) -> None:
    long_ago = now() - timedelta(days=6 * 365)
    old, old_picture = old_closed_case(web, "old", long_ago)
    held, held_picture = old_closed_case(web, "held", long_ago)
    recent, recent_picture = old_closed_case(web, "recent", now() - timedelta(days=30))
    assert web.client("sup").post(f"/api/incidents/{held.incident_id}/hold", json={"reason": "court"}).status_code \
        == 201
    engine, files = web.app.state.store.engine, EvidenceStore(web.evidence_dir)
    run_at = datetime.now(timezone.utc).replace(tzinfo=None)
    plans = [p for p in purge_plan(engine, files, run_at - timedelta(days=1827), run_at)
             if p.incident_id in {old.incident_id, held.incident_id, recent.incident_id}]
    assert [p.incident_id for p in plans] == [old.incident_id]
    purge_case(engine, files, plans[0], 1827, run_at)

    gone = web.client("ops").get(f"/api/evidence/{old_picture.sha256}")
    assert gone.status_code == 410
    assert gone.json()["error"] == (f"sha256: evidence file '{old_picture.sha256}' was deleted on {run_at:%Y-%m-%d} "
                                    "under the retention rule; its hash and its case's record are kept")
    for kept in (held_picture, recent_picture):
        assert web.client("ops").get(f"/api/evidence/{kept.sha256}").status_code == 200
    page = web.client("ops").get(f"/api/incidents/{old.incident_id}/export.html").text
    assert "已按保存期限删除 PURGED (retention)" in page and "FILE MISSING" not in page
    assert f"deleted on {run_at:%Y-%m-%d} under the retention rule" in page
    assert f'sha256 recorded: <span class="hash">{old_picture.sha256}</span>' in page
    assert page.count("evidence_purged") == 1 and "officer_photo" not in page  # the step, not a photo it brought
    assert access_log(web, sha256=old_picture.sha256).json()["total"] == 0  # a 410 is not a view
