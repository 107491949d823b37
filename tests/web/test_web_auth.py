"""Roles and auth: anonymous and wrong-role calls are refused for every state-changing endpoint, and
nothing reaches Kafka when they are; officers see only their own tasks; reports are read-only."""
from __future__ import annotations

import pytest

from nonsite.config import load_city
from web_harness import PROJECT, WebHarness, dispatched_case, start_web, street_jpeg

pytestmark = [pytest.mark.kafka]

ROLES = {"operator": "ops", "supervisor": "sup", "officer": "zhangwei"}


@pytest.fixture(scope="module")
def web(kafka_bootstrap: str, city, tmp_path_factory) -> WebHarness:
    harness = start_web(city, kafka_bootstrap, tmp_path_factory.mktemp("evidence"), outcome_wait_s=0.5)
    yield harness
    harness.stop()


def state_changing_calls(case_id: str, task_id: str) -> dict[tuple[str, str], dict]:
    """Every state-changing endpoint (route template -> a well-formed call) and the roles allowed to call it."""
    return {
        ("POST", "/api/logout"): {"path": "/api/logout", "allowed": {"operator", "supervisor", "officer"}},
        ("POST", "/api/uploads"): {"path": "/api/uploads", "allowed": {"officer"},
                                   "content": street_jpeg(), "headers": {"Content-Type": "image/jpeg"}},
        ("POST", "/api/tasks/{task_id}/actions"): {"path": f"/api/tasks/{task_id}/actions", "allowed": {"officer"},
                                                   "json": {"action": "accept"}},
        ("POST", "/api/incidents/{incident_id}/reassign"): {"path": f"/api/incidents/{case_id}/reassign",
                                                            "allowed": {"operator"},
                                                            "json": {"target_officer": "O102"}},
        ("POST", "/api/incidents/{incident_id}/hold"): {"path": f"/api/incidents/{case_id}/hold",
                                                        "allowed": {"supervisor"}, "json": {"reason": "行政诉讼"}},
        ("POST", "/api/incidents/{incident_id}/hold/release"): {
            "path": f"/api/incidents/{case_id}/hold/release", "allowed": {"supervisor"}, "json": {"reason": "done"},
            "before": f"/api/incidents/{case_id}/hold"},  # a hold to release, placed by a supervisor
        ("PUT", "/api/cameras/{camera_id}/zones"): {"path": "/api/cameras/cam-01/zones", "allowed": {"operator"},
                                                     "json": unchanged_zones("cam-01")},
        # the case is dispatched, not awaiting review: past the role check, an operator gets 409
        ("POST", "/api/incidents/{incident_id}/confirm"): {"path": f"/api/incidents/{case_id}/confirm",
                                                           "allowed": {"operator"}, "json": {}, "passed": 409},
        ("POST", "/api/incidents/{incident_id}/dismiss"): {"path": f"/api/incidents/{case_id}/dismiss",
                                                           "allowed": {"operator"}, "json": {"reason": "a shadow"},
                                                           "passed": 409},
        # no labelled crops yet: past the role check, an operator gets 409
        ("POST", "/api/spots/train"): {"path": "/api/spots/train", "allowed": {"operator"},
                                       "json": {"camera_id": "cam-03"}, "passed": 409},
    }


def unchanged_zones(camera_id: str) -> dict:
    """The zones the sample cameras.yaml holds: saving them writes nothing to the repository's file."""
    camera = load_city(PROJECT / "configs").camera(camera_id)
    return {"zones": [zone.model_dump(mode="json", exclude_none=True) for zone in camera.zones],
            "privacy_zones": [zone.model_dump(mode="json") for zone in camera.privacy_zones]}


def test_the_table_covers_every_state_changing_route(web: WebHarness) -> None:
    spec = web.client().get("/openapi.json").json()
    routes = {(method.upper(), path) for path, operations in spec["paths"].items() for method in operations
              if method in ("post", "put", "patch", "delete") and path != "/api/login"}
    assert routes == set(state_changing_calls("x", "y"))


@pytest.mark.parametrize("route", list(state_changing_calls("x", "y")), ids=lambda r: f"{r[0]} {r[1]}")
def test_anonymous_calls_are_refused(web: WebHarness, route) -> None:
    case, task = dispatched_case(web, "O101")
    call = state_changing_calls(case.incident_id, task.task_id)[route]
    body = {k: call[k] for k in ("json", "content", "headers") if k in call}
    answer = web.client().request(route[0], call["path"], **body)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"].startswith("authentication required")
    with pytest.raises(AssertionError):
        web.next_feedback(timeout=1.0, incident_id=case.incident_id)


@pytest.mark.parametrize("route", list(state_changing_calls("x", "y")), ids=lambda r: f"{r[0]} {r[1]}")
def test_wrong_roles_are_refused(web: WebHarness, route) -> None:
    case, task = dispatched_case(web, "O101")
    call = state_changing_calls(case.incident_id, task.task_id)[route]
    body = {k: call[k] for k in ("json", "content", "headers") if k in call}
    for role, username in ROLES.items():
        if role in call["allowed"]:
            continue
        answer = web.client(username).request(route[0], call["path"], **body)
        assert answer.status_code == 403, (role, answer.text)
        assert answer.json()["error"].startswith(f"role '{role}' may not do this")
    with pytest.raises(AssertionError):
        web.next_feedback(timeout=1.0, incident_id=case.incident_id)


@pytest.mark.parametrize("route", list(state_changing_calls("x", "y")), ids=lambda r: f"{r[0]} {r[1]}")
def test_allowed_roles_get_through(web: WebHarness, route) -> None:
    case, task = dispatched_case(web, "O101")
    call = state_changing_calls(case.incident_id, task.task_id)[route]
    body = {k: call[k] for k in ("json", "content", "headers") if k in call}
    if "before" in call:
        assert web.client("sup").post(call["before"], json={"reason": "行政诉讼"}).status_code == 201
    for role in call["allowed"]:
        answer = web.client(ROLES[role]).request(route[0], call["path"], **body)
        assert answer.status_code in ((call["passed"],) if "passed" in call else (200, 201, 202)), (role, answer.text)


@pytest.mark.parametrize("path,allowed", [
    ("/api/incidents", {"operator", "supervisor"}),
    ("/api/cameras", {"operator", "supervisor"}),
    ("/api/alerts", {"operator", "supervisor"}),
    ("/api/my/tasks", {"officer"}),
    ("/api/reports/summary", {"operator", "supervisor"}),
    ("/api/reports/summary.csv", {"operator", "supervisor"}),
    ("/api/reports/monthly?month=2026-10", {"operator", "supervisor"}),
])
def test_read_endpoints_check_the_role(web: WebHarness, path: str, allowed: set[str]) -> None:
    assert web.client().get(path).status_code == 401
    for role, username in ROLES.items():
        assert web.client(username).get(path).status_code == (200 if role in allowed else 403), (path, role)


def test_pages_load_for_anyone_but_their_data_needs_a_login(web: WebHarness) -> None:
    client = web.client()
    for page in ("/login", "/wall", "/officer", "/reports", "/reports/monthly", "/docs", "/zones", "/"):
        answer = client.get(page)
        assert answer.status_code == 200 and "<script" in answer.text
        assert "http://" not in answer.text and "https://" not in answer.text  # no external assets
    assert client.get("/api/live").status_code == 401
