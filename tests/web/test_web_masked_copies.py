"""Who sees which copy of a picture (docs/privacy.md), against the running app on the local Kafka: the wall,
searches, supervisors and exports get the public copy; the case's handlers the subject copy; the original only
to a handler who states a reason; an officer of another grid none of them."""
from __future__ import annotations

import hashlib

import msgspec
import pytest

from contract import new_id
from nonsite.evidence import EvidenceStore
from web_harness import WebHarness, dispatched_case, start_web, street_jpeg

pytestmark = [pytest.mark.kafka]


@pytest.fixture(scope="module")
def web(kafka_bootstrap: str, city, tmp_path_factory) -> WebHarness:
    harness = start_web(city, kafka_bootstrap, tmp_path_factory.mktemp("evidence"))
    yield harness
    harness.stop()


@pytest.fixture(scope="module")
def masked_case(web: WebHarness):
    """A case in grid G01 (officer O101) whose picture has an original, a subject and a public copy."""
    store = EvidenceStore(web.evidence_dir)
    tag = new_id()[:6]
    original, subject, public = (store.put(street_jpeg(f"{name} {tag}"), "annotated", "image/jpeg")
                                 for name in ("original", "subject", "public"))
    picture = msgspec.structs.replace(original, masked={"subject": subject.sha256, "public": public.sha256})
    case, task = dispatched_case(web, "O101", evidence=[picture])
    return case, task, original.sha256, subject.sha256, public.sha256


def status(web: WebHarness, username: str, sha256: str, **params) -> int:
    return web.client(username).get(f"/api/evidence/{sha256}", params=params).status_code


def test_the_wall_and_supervisors_show_the_public_copy(web: WebHarness, masked_case) -> None:
    case, _, original, subject, public = masked_case
    for username in ("ops", "sup"):
        listed = [i for i in web.client(username).get("/api/incidents").json() if i["incident_id"] == case.incident_id]
        assert listed[0]["snapshot"] == f"/api/evidence/{public}", username
    detail = web.client("sup").get(f"/api/incidents/{case.incident_id}").json()
    assert [e["sha256"] for e in detail["evidence"]] == [public]
    assert status(web, "sup", public) == 200
    assert status(web, "sup", subject) == 403 and status(web, "sup", original, reason="curious") == 403


def test_the_handlers_see_the_subject_and_open_the_original_with_a_reason(web: WebHarness, masked_case) -> None:
    case, task, original, subject, public = masked_case
    detail = web.client("ops").get(f"/api/incidents/{case.incident_id}").json()
    assert [e["sha256"] for e in detail["evidence"]] == [subject]
    mine = web.client("zhangwei").get(f"/api/tasks/{task.task_id}").json()
    assert [e["sha256"] for e in mine["evidence"]] == [subject]
    for username in ("ops", "zhangwei"):
        assert status(web, username, subject) == 200 and status(web, username, public) == 200
        refused = web.client(username).get(f"/api/evidence/{original}")
        assert refused.status_code == 422 and refused.json()["error"].startswith("reason:")
        opened = web.client(username).get(f"/api/evidence/{original}", params={"reason": "read the plate"})
        assert opened.status_code == 200 and hashlib.sha256(opened.content).hexdigest() == original
    logged = web.client("sup").get("/api/access-log", params={"sha256": original}).json()
    assert {(row["person_id"], row["reason"]) for row in logged["accesses"]} >= {("U001", "read the plate"),
                                                                                  ("O101", "read the plate")}


def test_an_officer_of_another_grid_sees_no_copy(web: WebHarness, masked_case) -> None:
    _, _, original, subject, public = masked_case
    for sha256 in (original, subject, public):
        assert status(web, "wangqiang", sha256, reason="curious") == 403


def test_the_export_embeds_the_public_copy(web: WebHarness, masked_case) -> None:
    case, _, original, subject, public = masked_case
    page = web.client("ops").get(f"/api/incidents/{case.incident_id}/export.html").text
    assert public in page and subject not in page
