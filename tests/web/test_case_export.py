"""The case file (案卷) export against the running app on the local Kafka: a case dispatched, worked through the
officer's actions (answered as the case processor would), verified by the camera and closed, then exported
as one self-contained HTML page: every step, every task, every image with its hash, who may have it, what a
supervisor does not see, and the access log row each export leaves."""
from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Optional
from zoneinfo import ZoneInfo

import pytest

from contract import CaseEvent, Evidence, Incident, new_id, parse_iso
from nonsite.evidence import EvidenceStore
from web_harness import WebHarness, dispatched_case, iso, now, start_web, street_jpeg

pytestmark = [pytest.mark.kafka]
PLATE = "浙A12345"
REASON = "行政复议 2026-117"


class Page(HTMLParser):
    """The tables (rows of cell texts) and the images (src) of an exported page."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self._cell: Optional[list[str]] = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        found = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(found["src"])
        elif tag in ("link", "script", "a", "iframe", "object"):
            self.links.append(f"{tag} {found}")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def embedded(self) -> list[bytes]:
        """The bytes of every image embedded as a data: URI."""
        return [base64.b64decode(src.split(",", 1)[1]) for src in self.images if src.startswith("data:")]

    def facts(self) -> dict[str, str]:
        return {row[0]: row[1] for row in self.tables[0]}


@pytest.fixture(scope="module")
def web(kafka_bootstrap: str, city, tmp_path_factory) -> WebHarness:
    harness = start_web(city, kafka_bootstrap, tmp_path_factory.mktemp("evidence"), outcome_wait_s=0.2)
    yield harness
    harness.stop()


def act(web: WebHarness, task_id: str, body: dict, applied: bool, from_state: str, to_state: str,
        reason: str = "") -> CaseEvent:
    """The officer's action through the API, answered as the case processor would."""
    answer = web.client("zhangwei").post(f"/api/tasks/{task_id}/actions", json=body)
    assert answer.status_code == 202, answer.text
    feedback = web.next_feedback(feedback_id=answer.json()["feedback_id"])
    return web.reply(feedback, applied=applied, from_state=from_state, to_state=to_state, reason=reason)


@pytest.fixture(scope="module")
def worked_case(web: WebHarness) -> dict:
    """A dispatched case accepted, arrived at, resolved with a photo (one step refused on the way), verified by
    the camera and closed; with its scene picture, a plate picture and the officer's photo."""
    store = EvidenceStore(web.evidence_dir)
    scene = store.put(street_jpeg(f"scene {new_id()[:6]}"), "annotated")
    plate_picture = store.put(street_jpeg(f"plate {new_id()[:6]}"), "plate")
    case, task = dispatched_case(web, "O101", evidence=[scene, plate_picture], plate=PLATE)
    photo = street_jpeg(f"after {new_id()[:6]}")
    uploaded = web.client("zhangwei").post("/api/uploads", content=photo, headers={"Content-Type": "image/jpeg"})
    assert uploaded.status_code == 201, uploaded.text
    steps = [act(web, task.task_id, {"action": "accept"}, True, "DISPATCHED", "ACCEPTED"),
             act(web, task.task_id, {"action": "resolve", "note": "x"}, False, "ACCEPTED", "RESOLVED",
                 reason="illegal transition ACCEPTED -> RESOLVED"),
             act(web, task.task_id, {"action": "arrive"}, True, "ACCEPTED", "ARRIVED"),
             act(web, task.task_id, {"action": "resolve", "note": "已劝离", "evidence": [uploaded.json()["sha256"]]},
                 True, "ARRIVED", "RESOLVED")]
    verified = CaseEvent(event_id=new_id(), incident_id=case.incident_id, seq=steps[-1].seq + 1, at=iso(now()),
                         actor="camera", action="verify", from_state="RESOLVED", to_state="CLOSED",
                         reason=f"camera re-check: {PLATE} gone", source="nonsite.detections/0/42")
    closed = Incident.from_dict({**case.asdict_deep(), "state": "CLOSED", "updated_at": verified.at})
    web.publish("case_events", verified)
    web.publish("incidents", closed)
    steps.append(verified)
    history = web.app.state.store.history
    web.wait_for(lambda: len(history(case.incident_id)) == len(steps)
                 and web.app.state.store.incident(case.incident_id).state == "CLOSED", what="the whole case recorded")
    return {"case": closed, "task": task, "steps": steps, "scene": scene, "plate": plate_picture,
            "photo": photo, "files": {scene.sha256: store.locate(scene.sha256).read_bytes(),
                                      plate_picture.sha256: store.locate(plate_picture.sha256).read_bytes(),
                                      hashlib.sha256(photo).hexdigest(): photo}}


def export(web: WebHarness, username: Optional[str], incident_id: str, **params: str):
    return web.client(username).get(f"/api/incidents/{incident_id}/export.html", params=params)


def local(web: WebHarness, text: str) -> str:
    return parse_iso(text).astimezone(ZoneInfo(web.city.system.city.timezone)).isoformat(sep=" ", timespec="seconds")


def test_the_export_holds_every_step_of_the_audit_log(web: WebHarness, worked_case: dict) -> None:
    answer = export(web, "ops", worked_case["case"].incident_id, reason=REASON)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    page = Page(answer.text)
    steps = page.tables[1]
    assert steps[0][:6] == ["#", "时间 When", "人员 Who", "动作 Action", "状态 From → to", "结果 Result"]
    names = {"O101": "张伟 Zhang Wei (O101)", "camera": "camera"}
    expected = [[str(e.seq), local(web, e.at), names[e.actor], e.action, f"{e.from_state} → {e.to_state}",
                 "已执行 applied" if e.applied else f"被拒绝 refused: {e.reason}"] for e in worked_case["steps"]]
    assert [row[:6] for row in steps[1:]] == expected
    sources = [row[8] for row in steps[1:]]
    assert sources == [e.source for e in worked_case["steps"]] and sources[0].startswith(web.city.kafka.topics.feedback)
    assert steps[4][7] == hashlib.sha256(worked_case["photo"]).hexdigest()  # the step that brought the photo
    assert steps[5][6] == f"camera re-check: {PLATE} gone"


def test_the_export_holds_the_facts_and_the_tasks(web: WebHarness, worked_case: dict) -> None:
    case, task = worked_case["case"], worked_case["task"]
    page = Page(export(web, "ops", case.incident_id).text)
    facts = page.facts()
    assert facts["案件编号 Case id"] == case.incident_id and facts["状态 State"] == "CLOSED"
    assert facts["场景 Scenario"] == "流浪犬 Stray dog (stray_dog)"
    assert facts["摄像头 Camera"].endswith("(cam-01)") and facts["网格 Grid"].endswith("(G01)")
    assert facts["处置期限 Deadline"] == local(web, case.deadline)
    assert facts["结案 Closed"] == local(web, worked_case["steps"][-1].at)
    assert facts["队员 Officer"] == "张伟 Zhang Wei (O101)" and facts["车牌 Plate"] == PLATE
    assert page.tables[2][1] == [task.task_id, "张伟 Zhang Wei (O101)", local(web, task.assigned_at),
                                 local(web, task.accept_by), local(web, task.deadline), "assigned", "1", "-"]


def test_every_evidence_file_is_embedded_with_its_recorded_and_recomputed_hash(web: WebHarness,
                                                                               worked_case: dict) -> None:
    text = export(web, "zhangwei", worked_case["case"].incident_id).text
    page = Page(text)
    files = worked_case["files"]
    assert sorted(hashlib.sha256(data).hexdigest() for data in page.embedded()) == sorted(files)
    for sha256 in files:
        assert f"sha256 recorded: <span class=\"hash\">{sha256}</span>" in text
        assert f"sha256 recomputed: <span class=\"hash\">{sha256}</span>" in text
    assert text.count("✔ 完整 intact") == len(files) and "MISMATCH" not in text and "MISSING" not in text
    # it stands alone: no script, no link to fetch, every image inside the page; and it prints
    assert page.links == [] and all(src.startswith("data:image/") for src in page.images)
    assert "@media print" in text


def test_a_changed_or_missing_file_is_marked_and_not_shown(web: WebHarness) -> None:
    store = EvidenceStore(web.evidence_dir)
    changed = store.put(street_jpeg(f"changed {new_id()[:6]}"), "annotated")
    store.locate(changed.sha256).write_bytes(street_jpeg("something else"))
    missing = Evidence(kind="clean", sha256=hashlib.sha256(b"never stored").hexdigest(), uri="xx/none.jpg")
    case, _ = dispatched_case(web, "O101", evidence=[changed, missing])
    text = export(web, "ops", case.incident_id).text
    actual = hashlib.sha256(street_jpeg("something else")).hexdigest()
    assert "✘ 哈希不符 HASH MISMATCH" in text and f'recomputed: <span class="hash">{actual}</span>' in text
    assert "✘ 文件缺失 FILE MISSING" in text and f'recorded: <span class="hash">{missing.sha256}</span>' in text
    assert Page(text).embedded() == []


def test_a_supervisor_gets_no_plate(web: WebHarness, worked_case: dict) -> None:
    answer = export(web, "sup", worked_case["case"].incident_id)
    assert answer.status_code == 200
    assert PLATE not in answer.text
    page = Page(answer.text)
    assert page.facts()["车牌 Plate"] == "[车牌已隐去 plate hidden]"
    shown = {hashlib.sha256(data).hexdigest() for data in page.embedded()}
    assert worked_case["plate"].sha256 not in shown and worked_case["scene"].sha256 in shown
    assert worked_case["plate"].sha256 in answer.text  # listed with its hash, the picture withheld
    assert PLATE in export(web, "ops", worked_case["case"].incident_id).text


def test_only_the_cases_officer_and_the_desk_may_export(web: WebHarness, worked_case: dict) -> None:
    incident_id = worked_case["case"].incident_id
    for username in ("ops", "sup", "zhangwei"):
        assert export(web, username, incident_id).status_code == 200, username
    refused = export(web, "lina", incident_id)
    assert refused.status_code == 403 and refused.json()["error"] == "incident_id: this case is not assigned to you"
    assert export(web, None, incident_id).status_code == 401
    assert export(web, "ops", new_id()).status_code == 404


def test_each_export_is_recorded_in_the_access_log(web: WebHarness, worked_case: dict) -> None:
    incident_id = worked_case["case"].incident_id
    store = web.app.state.store
    before = datetime.utcnow() - timedelta(seconds=1)
    already = len(store.accesses(incident_id=incident_id))
    assert export(web, "ops", incident_id, reason=REASON).status_code == 200
    assert export(web, "sup", incident_id).status_code == 200
    assert export(web, "lina", incident_id).status_code == 403  # refused: nothing was seen, nothing logged
    rows = store.accesses(incident_id=incident_id)
    assert len(rows) == already + 2
    assert [(r.person_id, r.role, r.what, r.target, r.reason) for r in rows[:2]] == [
        ("U002", "supervisor", "export", incident_id, ""), ("U001", "operator", "export", incident_id, REASON)]
    assert all(before <= r.at <= datetime.utcnow() for r in rows[:2])
    assert store.accesses(target=incident_id, what="export")[:2] == rows[:2]
