"""The web's JSON API against the running app on the local Kafka: read model, live events, actions,
validation, uploads and evidence, reports.  Records are produced straight to the app's own topics."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import msgspec
import pytest

from contract import new_id
from web_harness import (PROJECT, WebHarness, alert, camera_status, decode_sse, dispatched_case, free_port, incident,
                         start_web, stored_evidence, street_jpeg)

pytestmark = [pytest.mark.kafka]
NONSITE = str(Path(sys.executable).with_name("nonsite"))  # the console script, as users run it


@pytest.fixture(scope="module")
def web(kafka_bootstrap: str, city, tmp_path_factory) -> WebHarness:
    harness = start_web(city, kafka_bootstrap, tmp_path_factory.mktemp("evidence"), outcome_wait_s=3.0)
    yield harness
    harness.stop()


# ------------------------------------------------------------------ login and OpenAPI
def test_login_gives_a_token_that_identifies_the_caller(web: WebHarness) -> None:
    client = web.client("zhangwei")
    me = client.get("/api/me").json()
    assert me == {"person_id": "O101", "username": "zhangwei", "name": "张伟 Zhang Wei", "role": "officer",
                  "grid": "G01"}
    assert web.client("sup").get("/api/me").json()["role"] == "supervisor"


def test_wrong_password_and_unknown_user_are_refused_alike(web: WebHarness) -> None:
    client = web.client()
    for body in ({"username": "ops", "password": "nope"}, {"username": "ghost", "password": "ops-demo"}):
        answer = client.post("/api/login", json=body)
        assert answer.status_code == 401
        assert answer.json()["error"] == "username or password is wrong"


def test_logout_ends_the_token(web: WebHarness) -> None:
    client = web.client("ops")
    assert client.post("/api/logout").status_code == 200
    assert client.get("/api/me").status_code == 401


def test_a_forged_or_expired_token_is_refused(web: WebHarness) -> None:
    from web.auth import Principal

    tokens = web.app.state.tokens
    expired = tokens.issue(Principal("U001", "ops", "x", "operator"), now=time.time() - tokens.ttl_s - 1)
    body, signature = tokens.issue(Principal("O101", "zhangwei", "x", "officer")).split(".")
    import base64, json as _json
    claims = _json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["role"] = "operator"
    forged = base64.urlsafe_b64encode(_json.dumps(claims).encode()).decode().rstrip("=") + "." + signature
    client = web.client()
    for token in (expired, forged, "garbage"):
        assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_health_needs_no_login_and_reports_the_read_model(web: WebHarness) -> None:
    health = web.client().get("/api/health")
    assert health.status_code == 200 and health.json()["ok"] is True


def test_openapi_describes_every_api_route(web: WebHarness) -> None:
    spec = web.client().get("/openapi.json").json()
    for path in ("/api/login", "/api/live", "/api/my/tasks", "/api/tasks/{task_id}/actions",
                 "/api/incidents/{incident_id}/reassign", "/api/uploads", "/api/reports/summary",
                 "/api/reports/summary.csv", "/api/reports/monthly"):
        assert path in spec["paths"], path
    assert web.client().get("/docs").status_code == 200


# ------------------------------------------------------------------ the wall's read model
def test_an_incident_on_kafka_shows_on_the_wall_with_names_and_evidence(web: WebHarness) -> None:
    evidence = stored_evidence(web)
    case = incident(camera_id="cam-03", scenario="mobile_vendor", grid_id="G02", officer_id="O201",
                    evidence=[evidence], address="")
    web.publish("incidents", case)
    ops = web.client("ops")
    shown = web.wait_for(lambda: [i for i in ops.get("/api/incidents").json() if i["incident_id"] == case.incident_id],
                         what="incident on /api/incidents")[0]
    assert shown["camera_name"] == "南门市场 Nanmen market"
    assert shown["address"] == "南门市场东侧 Nanmen market east"
    assert shown["scenario_zh"] == "流摊小贩" and shown["officer_name"] == "王强 Wang Qiang"
    assert shown["snapshot"] == f"/api/evidence/{evidence.sha256}"
    picture = ops.get(shown["snapshot"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
    assert hashlib.sha256(picture.content).hexdigest() == evidence.sha256
    filtered = ops.get("/api/incidents", params={"grid": "G01"}).json()
    assert case.incident_id not in {i["incident_id"] for i in filtered}


def test_case_search_filters_pages_and_keeps_plates_to_the_handlers(web: WebHarness) -> None:
    long_ago = datetime(2025, 3, 1, 2, 0, tzinfo=timezone.utc)  # a day no other test files a case on
    cases = [incident(camera_id=camera, grid_id=grid, first_seen=long_ago + timedelta(hours=i),
                      plate="川A12345" if i == 0 else None)
             for i, (camera, grid) in enumerate([("cam-03", "G02"), ("cam-03", "G02"), ("cam-01", "G01")])]
    web.publish("incidents", *cases)
    ops, sup = web.client("ops"), web.client("sup")
    day = {"from": "2025-03-01", "to": "2025-03-01"}
    web.wait_for(lambda: ops.get("/api/cases", params=day).json()["total"] == 3, what="the three cases recorded")
    by_camera = ops.get("/api/cases", params={**day, "camera": "cam-03", "per_page": 1, "page": 2}).json()
    assert by_camera["total"] == 2 and [c["incident_id"] for c in by_camera["cases"]] == [cases[0].incident_id]
    assert [c["incident_id"] for c in ops.get("/api/cases", params={**day, "grid": "G01"}).json()["cases"]] == \
        [cases[2].incident_id]
    by_plate = ops.get("/api/cases", params={"plate": "川A12345"}).json()["cases"]
    assert [(c["incident_id"], c["plate"]) for c in by_plate] == [(cases[0].incident_id, "川A12345")]
    assert sup.get("/api/cases", params={"plate": "川A12345"}).status_code == 403
    assert all(c["plate"] is None for c in sup.get("/api/cases", params=day).json()["cases"])
    refused = ops.get("/api/cases", params={"plate": "nonsense"})
    assert refused.status_code == 422 and refused.json()["error"].startswith("plate:")
    assert web.client("zhangwei").get("/api/cases").status_code == 403


def test_a_later_snapshot_wins_and_an_older_one_is_ignored(web: WebHarness) -> None:
    base = datetime.now(timezone.utc)
    case = incident(state="DISPATCHED", updated_at=base)
    newer = msgspec.structs.replace(case, state="ACCEPTED", updated_at=(base + timedelta(seconds=5)).isoformat())
    older = msgspec.structs.replace(case, state="DETECTED", updated_at=(base - timedelta(seconds=5)).isoformat())
    web.publish("incidents", case, newer, older)
    ops = web.client("ops")
    web.wait_for(lambda: web.app.state.bus.recorded and ops.get(f"/api/incidents/{case.incident_id}").status_code == 200)
    time.sleep(0.5)
    assert ops.get(f"/api/incidents/{case.incident_id}").json()["state"] == "ACCEPTED"


def test_escalated_and_overdue_cases_are_flagged(web: WebHarness) -> None:
    late = incident(first_seen=datetime.now(timezone.utc) - timedelta(hours=2),
                    deadline=datetime.now(timezone.utc) - timedelta(minutes=5))
    escalated = incident(state="ESCALATED")
    web.publish("incidents", late, escalated)
    ops = web.client("ops")
    web.wait_for(lambda: web.app.state.store.incident(escalated.incident_id) is not None)
    assert ops.get(f"/api/incidents/{late.incident_id}").json()["overdue"] is True
    assert ops.get(f"/api/incidents/{escalated.incident_id}").json()["escalated"] is True
    rows = ops.get("/api/incidents").json()
    flagged = [r["incident_id"] for r in rows if r["overdue"] or r["escalated"]]
    assert rows[: len(flagged)] == [r for r in rows if r["incident_id"] in flagged][: len(flagged)]


def test_camera_panel_shows_online_and_offline(web: WebHarness) -> None:
    web.publish("camera_status", camera_status("cam-02", "offline", "rtsp timeout"), camera_status("cam-04", "online"))
    ops = web.client("ops")
    def states():
        rows = {c["camera_id"]: c for c in ops.get("/api/cameras").json()}
        return rows if rows["cam-02"]["state"] == "offline" and rows["cam-04"]["state"] == "online" else None
    rows = web.wait_for(states, what="camera states")
    assert rows["cam-02"]["reason"] == "rtsp timeout" and rows["cam-02"]["name"] == "人民路公交站 Renmin Rd bus stop"


def test_live_events_deliver_a_new_incident_within_one_second(web: WebHarness) -> None:
    ops = web.client("ops")
    with ops.stream("GET", "/api/live", timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = decode_sse(response.iter_lines())
        kind, snapshot = next(events)
        assert kind == "snapshot" and {"incidents", "cameras", "alerts"} <= set(snapshot)
        case = incident(scenario="sidewalk_parking", camera_id="cam-02")
        sent = time.monotonic()
        web.publish("incidents", case)
        web.publish("alerts", alert("new_incident", "新案件 new case", case.incident_id))
        kinds = set()
        for kind, data in events:
            kinds.add(kind)
            if kind == "incident" and data["incident_id"] == case.incident_id:
                latency = time.monotonic() - sent
                print(f"SSE latency Kafka -> event: {latency * 1000:.0f} ms")
                assert data["scenario_en"] == "Motor vehicle parked on the sidewalk"
                break
        assert latency < 1.0, f"incident reached the SSE stream after {latency:.3f}s"


# ------------------------------------------------------------------ officer tasks and actions
def test_officer_sees_only_own_tasks_most_urgent_first(web: WebHarness) -> None:
    older, older_task = dispatched_case(web, "O102", first_seen=datetime.now(timezone.utc) - timedelta(minutes=30))
    urgent, urgent_task = dispatched_case(web, "O102", scenario="sidewalk_parking", priority=1,
                                          first_seen=datetime.now(timezone.utc) - timedelta(minutes=40))
    newest, newest_task = dispatched_case(web, "O102")
    other, other_task = dispatched_case(web, "O201", camera_id="cam-03", grid_id="G02")
    tasks = web.client("lina").get("/api/my/tasks").json()
    ids = [t["task_id"] for t in tasks]
    assert other_task.task_id not in ids
    assert ids.index(urgent_task.task_id) < ids.index(newest_task.task_id) < ids.index(older_task.task_id)


def test_the_plate_shows_on_the_officers_task_and_the_wall(web: WebHarness) -> None:
    case, task = dispatched_case(web, "O102", scenario="sidewalk_parking", plate="京A88731")
    unread, unread_task = dispatched_case(web, "O102", scenario="sidewalk_parking")
    officer = web.client("lina")
    tasks = {t["task_id"]: t for t in officer.get("/api/my/tasks").json()}
    assert tasks[task.task_id]["plate"] == "京A88731" and tasks[unread_task.task_id]["plate"] is None
    assert officer.get(f"/api/tasks/{task.task_id}").json()["plate"] == "京A88731"
    ops = web.client("ops")
    wall = {i["incident_id"]: i for i in ops.get("/api/incidents").json()}
    assert wall[case.incident_id]["plate"] == "京A88731" and wall[unread.incident_id]["plate"] is None
    assert ops.get(f"/api/incidents/{case.incident_id}").json()["plate"] == "京A88731"
    supervisor = web.client("sup")  # sees the wall read-only, but handles no case: no plate text
    assert {i["incident_id"]: i for i in supervisor.get("/api/incidents").json()}[case.incident_id]["plate"] is None
    assert supervisor.get(f"/api/incidents/{case.incident_id}").json()["plate"] is None


def test_an_officer_cannot_read_or_act_on_another_officers_task(web: WebHarness) -> None:
    evidence = stored_evidence(web, "other")
    case, task = dispatched_case(web, "O201", camera_id="cam-03", grid_id="G02", evidence=[evidence])
    lina = web.client("lina")
    assert lina.get(f"/api/tasks/{task.task_id}").status_code == 403
    assert lina.get(f"/api/incidents/{case.incident_id}").status_code == 403
    refused = lina.post(f"/api/tasks/{task.task_id}/actions", json={"action": "accept"})
    assert refused.status_code == 403 and refused.json()["error"].startswith("task_id:")
    assert lina.get(f"/api/evidence/{evidence.sha256}").status_code == 403
    assert web.client("wangqiang").get(f"/api/evidence/{evidence.sha256}").status_code == 200
    assert web.client("sup").get(f"/api/evidence/{evidence.sha256}").status_code == 200
    assert web.client().get(f"/api/evidence/{evidence.sha256}").status_code == 401


def test_accept_becomes_feedback_and_the_processors_answer_comes_back(web: WebHarness) -> None:
    case, task = dispatched_case(web, "O101")
    client = web.client("zhangwei")
    import threading
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.update(
        response=client.post(f"/api/tasks/{task.task_id}/actions", json={"action": "accept"})))
    thread.start()
    feedback = web.next_feedback(incident_id=case.incident_id, action="accept")
    assert feedback.actor == "O101" and feedback.task_id == task.task_id and len(feedback.feedback_id) == 32
    web.reply(feedback, applied=True, from_state="DISPATCHED", to_state="ACCEPTED")
    thread.join(10)
    response = answer["response"]
    assert response.status_code == 200, response.text
    assert response.json() == {"feedback_id": feedback.feedback_id, "action": "accept", "status": "applied",
                               "reason": "", "to_state": "ACCEPTED"}


def test_a_refused_action_shows_the_reason(web: WebHarness) -> None:
    case, task = dispatched_case(web, "O101")
    client = web.client("zhangwei")
    import threading
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.update(
        response=client.post(f"/api/tasks/{task.task_id}/actions", json={"action": "resolve", "note": "done"})))
    thread.start()
    feedback = web.next_feedback(incident_id=case.incident_id, action="resolve")
    assert feedback.note == "done"
    web.reply(feedback, applied=False, from_state="DISPATCHED", to_state="RESOLVED",
              reason="illegal transition DISPATCHED -> RESOLVED", source="id")
    thread.join(10)
    assert answer["response"].status_code == 409
    assert answer["response"].json()["status"] == "refused"
    assert answer["response"].json()["reason"] == "illegal transition DISPATCHED -> RESOLVED"


def test_without_an_answer_the_action_is_pending_and_can_be_asked_later(web: WebHarness) -> None:
    case, task = dispatched_case(web, "O101")
    client = web.client("zhangwei")
    response = client.post(f"/api/tasks/{task.task_id}/actions", json={"action": "arrive"})
    assert response.status_code == 202 and response.json()["status"] == "pending"
    feedback = web.next_feedback(feedback_id=response.json()["feedback_id"])
    web.reply(feedback, applied=True, from_state="ACCEPTED", to_state="ARRIVED")
    later = web.wait_for(lambda: (r := client.get(f"/api/feedback/{feedback.feedback_id}").json())["status"] != "pending"
                         and r, what="feedback outcome")
    assert later["status"] == "applied" and later["to_state"] == "ARRIVED"


def test_feedback_the_processor_dead_letters_is_refused_with_its_reason(web: WebHarness) -> None:
    case, task = dispatched_case(web, "O101")
    client = web.client("zhangwei")
    response = client.post(f"/api/tasks/{task.task_id}/actions", json={"action": "accept"})
    assert response.status_code == 202
    feedback = web.next_feedback(feedback_id=response.json()["feedback_id"])
    web.dead_letter(feedback, f"feedback for unknown case {case.incident_id!r}")
    later = web.wait_for(lambda: (r := client.get(f"/api/feedback/{feedback.feedback_id}").json())["status"] != "pending"
                         and r, what="dead-letter verdict")
    assert later == {"feedback_id": feedback.feedback_id, "action": "accept", "status": "refused",
                     "reason": f"feedback for unknown case {case.incident_id!r}", "to_state": None}
    assert web.client("lina").get(f"/api/feedback/{feedback.feedback_id}").status_code == 403
    assert client.get(f"/api/feedback/{new_id()}").status_code == 404


def test_reject_needs_a_reason_from_the_list(web: WebHarness) -> None:
    case, task = dispatched_case(web, "O101")
    client = web.client("zhangwei")
    bad = client.post(f"/api/tasks/{task.task_id}/actions", json={"action": "reject", "reason": "whatever"})
    assert bad.status_code == 422 and bad.json()["error"].startswith("reason:")
    good = client.post(f"/api/tasks/{task.task_id}/actions", json={"action": "reject", "reason": "not_a_violation"})
    assert good.status_code == 202
    feedback = web.next_feedback(feedback_id=good.json()["feedback_id"])
    assert feedback.action == "reject" and feedback.reason.startswith("not_a_violation:")


def test_photo_upload_is_stored_by_sha256_and_travels_in_the_feedback(web: WebHarness) -> None:
    case, task = dispatched_case(web, "O101")
    client = web.client("zhangwei")
    photo = street_jpeg("after")
    uploaded = client.post("/api/uploads", content=photo, headers={"Content-Type": "image/jpeg"})
    assert uploaded.status_code == 201, uploaded.text
    sha = hashlib.sha256(photo).hexdigest()
    assert uploaded.json()["sha256"] == sha
    assert (web.evidence_dir / sha[:2] / f"{sha}.jpg").read_bytes() == photo
    assert client.get(f"/api/evidence/{sha}").content == photo  # the uploader may see it
    assert web.client("lina").get(f"/api/evidence/{sha}").status_code == 403
    response = client.post(f"/api/tasks/{task.task_id}/actions",
                           json={"action": "resolve", "note": "已劝离", "evidence": [sha]})
    feedback = web.next_feedback(feedback_id=response.json()["feedback_id"])
    assert [(e.kind, e.sha256, e.content_type) for e in feedback.evidence] == [("officer_photo", sha, "image/jpeg")]
    web.reply(feedback, applied=True, from_state="ARRIVED", to_state="RESOLVED")
    detail = web.wait_for(lambda: (d := client.get(f"/api/tasks/{task.task_id}").json())["photos"] and d,
                          what="the photo in the task's history")
    assert detail["photos"] == [{"sha256": sha, "url": f"/api/evidence/{sha}"}]


@pytest.mark.parametrize("headers,body,status,starts", [
    ({"Content-Type": "application/pdf"}, b"%PDF-1.4", 415, "content-type:"),
    ({"Content-Type": "image/png"}, b"\xff\xd8\xff\xe0 not png", 415, "body:"),
    ({"Content-Type": "image/jpeg"}, b"", 422, "body:"),
    ({"Content-Type": "image/jpeg"}, b"\xff\xd8\xff" + b"0" * (9 * 1024 * 1024), 413, "body:"),
])
def test_uploads_are_limited_in_type_and_size(web: WebHarness, headers, body, status, starts) -> None:
    answer = web.client("zhangwei").post("/api/uploads", content=body, headers=headers)
    assert answer.status_code == status and answer.json()["error"].startswith(starts), answer.text


def test_reassign_writes_feedback_with_the_target_officer(web: WebHarness) -> None:
    case, task = dispatched_case(web, "O101")
    ops = web.client("ops")
    response = ops.post(f"/api/incidents/{case.incident_id}/reassign", json={"target_officer": "O102",
                                                                           "reason": "closer"})
    feedback = web.next_feedback(feedback_id=response.json()["feedback_id"])
    assert (feedback.action, feedback.target_officer, feedback.task_id, feedback.actor) == \
        ("reassign", "O102", task.task_id, "U001")
    unknown = ops.post(f"/api/incidents/{case.incident_id}/reassign", json={"target_officer": "O999"})
    assert unknown.status_code == 422 and unknown.json()["error"].startswith("target_officer:")
    missing = ops.post(f"/api/incidents/{new_id()}/reassign", json={"target_officer": "O102"})
    assert missing.status_code == 404


# ------------------------------------------------------------------ bad input: 4xx naming the field
@pytest.mark.parametrize("method,path,kwargs,status,field", [
    ("post", "/api/login", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 422, "body"),
    ("post", "/api/login", {"json": {"username": "ops"}}, 422, "password"),
    ("post", "/api/login", {"json": {"username": "ops", "password": "x", "extra": 1}}, 422, "extra"),
    ("get", "/api/reports/summary?from=2026-13-01", {}, 422, "query.from"),
    ("get", "/api/reports/summary?from=2026-11-10&to=2026-11-01", {}, 422, "to"),
    ("get", "/api/reports/summary?by=colour", {}, 422, "query.by"),
    ("get", "/api/reports/monthly?month=2026-1", {}, 422, "query.month"),
    ("get", "/api/reports/ranking?min_sample=0", {}, 422, "query.min_sample"),
    ("get", "/api/incidents?limit=-1", {}, 422, "query.limit"),
    ("get", "/api/evidence/not-a-hash", {}, 422, "sha256"),
])
def test_bad_input_gets_a_4xx_naming_the_field(web: WebHarness, method, path, kwargs, status, field) -> None:
    answer = getattr(web.client("ops"), method)(path, **kwargs)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"].startswith(field), answer.json()


def test_bad_action_bodies_name_the_field(web: WebHarness) -> None:
    case, task = dispatched_case(web, "O101")
    client = web.client("zhangwei")
    for body, field in (({"action": "fly"}, "action"), ({"action": "resolve", "evidence": ["0" * 64]}, "evidence[0]"),
                        ({"action": "resolve", "note": 5}, "note"), ({}, "action")):
        answer = client.post(f"/api/tasks/{task.task_id}/actions", json=body)
        assert answer.status_code == 422 and answer.json()["error"].startswith(field), (body, answer.text)
    assert client.post(f"/api/tasks/{new_id()}/actions", json={"action": "accept"}).status_code == 404


# ------------------------------------------------------------------ the command
def config_folder(tmp_path: Path, suffix: str) -> Path:
    """The sample configuration with topics of its own."""
    import shutil
    import yaml

    folder = tmp_path / "configs"
    shutil.copytree(PROJECT / "configs", folder)
    system = yaml.safe_load((folder / "nonsite.yaml").read_text(encoding="utf-8"))
    system["kafka"]["topics"] = {k: f"test.cli.{k}.{suffix}" for k in system["kafka"]["topics"]}
    system["detector"]["evidence_dir"] = str(tmp_path / "evidence")
    (folder / "nonsite.yaml").write_text(yaml.safe_dump(system, allow_unicode=True), encoding="utf-8")
    return folder


def test_nonsite_web_refuses_to_start_without_its_topics(kafka_bootstrap: str, tmp_path: Path) -> None:
    folder = config_folder(tmp_path, new_id()[:8])
    done = subprocess.run([NONSITE, "--config", str(folder), "web", "--port",
                           str(free_port())], cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(f"nonsite: kafka at {kafka_bootstrap} has no topic test.cli.")


def test_nonsite_web_command_serves_the_app(kafka_bootstrap: str, tmp_path: Path) -> None:
    from nonsite.kafka.admin import ensure_topics
    from nonsite.config import load_city

    folder = config_folder(tmp_path, new_id()[:8])
    ensure_topics(kafka_bootstrap, load_city(folder).kafka.topics.all().values(), 1, 1)
    port = free_port()
    process = subprocess.Popen([NONSITE, "--config", str(folder), "web",
                                "--port", str(port)], cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/api/login",
                                    json={"username": "sup", "password": "sup-demo"})
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, process.stdout.read().decode()
                time.sleep(0.2)
        assert answer.status_code == 200 and answer.json()["role"] == "supervisor"
        assert "nonsite_web_consumed_total" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        process.terminate()
        assert process.wait(20) in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown
