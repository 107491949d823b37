"""Pure parts of the web, without Kafka: tokens, logins, the read model, statistics, the evidence store."""
from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ElementTree
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import msgspec
import pytest

from contract import Alert, CaseEvent, Incident, new_id, to_iso
from nonsite.evidence import EvidenceStore
from web import uploads
from web import reports
from web.auth import Principal, TokenIssuer, find_login
from web.readmodel import ReadModel

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)


def make_incident(state: str = "DISPATCHED", updated: datetime = T0, incident_id: str = "i1") -> Incident:
    return Incident(incident_id=incident_id, camera_id="cam-01", scenario="stray_dog", zone_id="z", grid_id="G01",
                    state=state, first_seen=to_iso(T0), last_seen=to_iso(T0), updated_at=to_iso(updated))


def case_event(applied: bool = True, source: str = "", reason: str = "", to_state: str = "ACCEPTED") -> CaseEvent:
    return CaseEvent(event_id=new_id(), incident_id="i1", seq=1, at=to_iso(T0), actor="O101", action="accept",
                     from_state="DISPATCHED", to_state=to_state, applied=applied, reason=reason, source=source)


# ------------------------------------------------------------------ auth
def test_tokens_expire_and_can_be_revoked() -> None:
    issuer = TokenIssuer(b"secret", ttl_s=60)
    who = Principal("O101", "zhangwei", "Zhang Wei", "officer", "G01")
    token = issuer.issue(who, now=1000)
    assert issuer.check(token, now=1059) == who
    assert issuer.check(token, now=1060) is None
    issuer.revoke(token)
    assert issuer.check(token, now=1001) is None


def test_tokens_from_another_secret_are_refused() -> None:
    token = TokenIssuer(b"one", 60).issue(Principal("U001", "ops", "x", "operator"))
    assert TokenIssuer(b"two", 60).check(token) is None


def test_logins_come_from_the_configured_hashes(city) -> None:
    assert find_login(city, "zhangwei", "off-demo") == Principal("O101", "zhangwei", "张伟 Zhang Wei", "officer",
                                                                  "G01")
    assert find_login(city, "ops", "ops-demo").role == "operator"
    assert find_login(city, "sup", "sup-demo").role == "supervisor"
    assert find_login(city, "ops", "off-demo") is None
    assert find_login(city, "nobody", "off-demo") is None


def test_demo_logins_are_listed_only_while_their_demo_password_works(city) -> None:
    from nonsite.config import Credentials
    from nonsite.passwords import hash_password
    from web.api.session import _demo_logins

    assert {a["username"] for a in _demo_logins(city)} == {"ops", "sup", "zhangwei", "lina", "wangqiang", "liuyang"}
    ops = city.users[0].model_copy(update={"credentials": Credentials(username="ops",
                                                                      password_hash=hash_password("real", 1000))})
    changed = city.model_copy(update={"users": [ops, *city.users[1:]]})
    assert "ops" not in {a["username"] for a in _demo_logins(changed)}


# ------------------------------------------------------------------ read model
def test_latest_snapshot_wins() -> None:
    model = ReadModel()
    model.apply("incidents", make_incident("ACCEPTED", T0 + timedelta(seconds=5)))
    assert model.apply("incidents", make_incident("DISPATCHED", T0)) == []
    assert model.incidents["i1"].state == "ACCEPTED"


def test_outcome_is_found_by_the_feedback_id_in_source_or_reason() -> None:
    model = ReadModel()
    by_source, by_reason = new_id(), new_id()
    model.apply("case_events", case_event(source=f"nonsite.feedback/2/17#{by_source}"))
    model.apply("case_events", case_event(applied=False, reason=f"feedback {by_reason}: illegal transition"))
    assert model.outcome(by_source).applied is True
    assert model.outcome(by_reason).applied is False
    assert model.outcome(new_id()) is None


def test_outcome_is_found_by_the_feedback_position() -> None:
    model = ReadModel()
    model.apply("case_events", case_event(source="nonsite.feedback/3/41"))
    assert model.outcome(new_id(), "nonsite.feedback/3/41").applied is True
    assert model.outcome(new_id(), "nonsite.feedback/3/4") is None


def test_a_dead_lettered_feedback_is_a_refusal() -> None:
    from contract import DeadLetter, Feedback

    model = ReadModel(feedback_topic="nonsite.feedback")
    feedback = Feedback(feedback_id=new_id(), incident_id="nope", action="accept", actor="O101", at=to_iso(T0))
    for topic in ("nonsite.detections", "nonsite.feedback"):
        model.apply("dead_letter", DeadLetter(dead_letter_id="d", topic=topic, partition=1, offset=9,
                                              reason="feedback for unknown case 'nope'", at=to_iso(T0),
                                              raw=feedback.to_json().decode()))
    verdict = model.outcome(feedback.feedback_id, "nonsite.feedback/1/9")
    assert (verdict.applied, verdict.reason, verdict.action) == (False, "feedback for unknown case 'nope'", "accept")
    assert model.outcome("nonsite.detections/1/9") is None


def test_a_refusal_outranks_other_events_of_the_same_feedback() -> None:
    model = ReadModel()
    feedback_id = new_id()
    model.apply("case_events", case_event(source=f"x#{feedback_id}"))
    model.apply("case_events", case_event(applied=False, source=f"x#{feedback_id}", reason="no"))
    assert model.outcome(feedback_id).reason == "no"


def test_an_escalation_alert_marks_the_case() -> None:
    model = ReadModel()
    model.apply("alerts", Alert(alert_id="a", kind="escalated", severity="critical", at=to_iso(T0), message="late",
                                incident_id="i9"))
    assert "i9" in model.escalated


# ------------------------------------------------------------------ response models
def test_response_models_declare_every_field_of_the_records_they_show() -> None:
    from contract import Evidence, Task
    from web.api import schemas

    for model, record in ((schemas.AlertOut, Alert), (schemas.CaseEventOut, CaseEvent), (schemas.TaskOut, Task)):
        assert list(model.model_fields) == list(record.field_names()), model.__name__
    assert set(Evidence.field_names()) <= set(schemas.StoredEvidence.model_fields)


def test_response_models_give_back_the_views_unchanged(city) -> None:
    from contract import Task
    from fastapi.encoders import jsonable_encoder
    from web.api import schemas
    from web.views import camera_view, incident_view, task_view

    def answer(model, view: dict) -> dict:
        return jsonable_encoder(model.model_validate(view).model_dump(mode="json", by_alias=True, exclude_unset=True))

    model = ReadModel()
    model.apply("incidents", make_incident())
    model.apply("incidents", msgspec.structs.replace(make_incident(incident_id="i2"), lat=30, lon=120.5))
    task = Task(task_id="t1", incident_id="i1", officer_id="O101", grid_id="G01", scenario="stray_dog",
                assigned_at=to_iso(T0), accept_by=to_iso(T0), deadline=to_iso(T0))
    orphan = Task(task_id="t2", incident_id="nowhere", officer_id="O101", grid_id="G01", scenario="stray_dog",
                  assigned_at=to_iso(T0), accept_by=to_iso(T0), deadline=to_iso(T0))
    views = [(schemas.IncidentView, incident_view(city, model, i)) for i in model.all_incidents()]
    views += [(schemas.TaskView, task_view(city, model, t)) for t in (task, orphan)]
    views += [(schemas.Camera, row) for row in camera_view(city, model)]
    for response_model, view in views:
        assert answer(response_model, view) == view
        assert set(view) <= set(response_model.model_fields), set(view) - set(response_model.model_fields)
    assert list(answer(schemas.IncidentView, views[0][1])) == list(views[0][1])  # same order too


def test_report_models_keep_from_and_to(city) -> None:
    from web.api import schemas

    total = reports.Figures("total", "合计 Total", filed=2, due=1, closed=1, on_time=1).as_dict()
    summary = {"from": "2026-10-01", "to": "2026-10-31", "by": "grid", "rows": [total], "total": total}
    assert schemas.Summary.model_validate(summary).model_dump(by_alias=True, exclude_unset=True) == summary
    ranking = reports.ranking([reports.Figures("x", "X", due=3)], 1)
    ranked = {"from": "a", "to": "b", "by": "officer", **ranking.as_dict()}
    dumped = schemas.Ranking.model_validate(ranked).model_dump(by_alias=True, exclude_unset=True)
    assert dumped == ranked and list(dumped["ranked"][0])[0] == "rank"


# ------------------------------------------------------------------ statistics
def facts(closed_after: float | None, rejected: bool = False, deadline_after: float = 60, officer: str = "O1",
          reworked: bool = False) -> reports.CaseFacts:
    return reports.CaseFacts(new_id(), "stray_dog", "G01", officer, "cam-01", T0, T0, T0 + timedelta(minutes=deadline_after),
                             None if closed_after is None else T0 + timedelta(minutes=closed_after), rejected, reworked)


def test_rates_follow_the_published_definitions() -> None:
    rows, total = reports.summarise([facts(10), facts(70), facts(None), facts(None, rejected=True),
                                     facts(30, reworked=True)], "officer", {})
    assert (total.filed, total.due, total.closed, total.on_time) == (5, 4, 3, 2)
    assert total.closure_rate == 0.75 and total.on_time_rate == 0.5 and total.rework_rate == 0.25
    assert total.false_alarm_rate == 0.2 and total.mean_minutes_to_close == round((10 + 70 + 30) / 3, 1)


def test_ranking_leaves_small_samples_unranked() -> None:
    cases = [facts(10, officer="big") for _ in range(9)] + [facts(None, officer="big")] + [facts(5, officer="tiny")]
    rows, _ = reports.summarise(cases, "officer", {})
    ranking = reports.ranking(rows, min_sample=10)
    assert [r.group for r in ranking.ranked] == ["big"] and [r.group for r in ranking.unranked] == ["tiny"]


def test_periods_use_local_days() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    period = reports.month_period("2026-12", shanghai)
    assert (period.first, period.last) == (date(2026, 12, 1), date(2026, 12, 31))
    assert period.covers(datetime(2026, 11, 30, 16, 30, tzinfo=timezone.utc))  # 00:30 on 1 Dec in Shanghai
    assert not period.covers(datetime(2026, 11, 30, 15, 30, tzinfo=timezone.utc))


def test_trend_chart_is_well_formed_svg() -> None:
    period = reports.Period(date(2026, 11, 1), date(2026, 11, 3), ZoneInfo("UTC"))
    svg = reports.trend_svg(reports.daily([facts(10), facts(None)], period))
    root = ElementTree.fromstring(svg)
    assert root.tag.endswith("svg") and len(root.findall("{http://www.w3.org/2000/svg}rect")) >= 4


# ------------------------------------------------------------------ evidence store
def test_evidence_is_stored_and_found_by_sha256(tmp_path) -> None:
    data = b"\xff\xd8\xff\xe0" + b"jpeg body"
    store = EvidenceStore(tmp_path)
    saved = store.put(data, "officer_photo", "image/jpeg")
    assert saved.sha256 == hashlib.sha256(data).hexdigest() and saved.uri == f"{saved.sha256[:2]}/{saved.sha256}.jpg"
    assert store.locate(saved.sha256).read_bytes() == data
    (tmp_path / ("b" * 64 + ".png")).write_bytes(b"\x89PNG\r\n\x1a\n")  # the flat layout works too
    assert uploads.media_type(store.locate("b" * 64)) == "image/png"
    assert store.locate("../etc/passwd") is None


@pytest.mark.parametrize("data,kind", [(b"\xff\xd8\xff\xdb", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
                                       (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"), (b"%PDF-1.7", None)])
def test_file_types_come_from_the_bytes(data: bytes, kind) -> None:
    assert uploads.sniff_type(data) == kind


# ------------------------------------------------------------------ plates: personal data
def test_plate_key_is_stable_and_keyed(monkeypatch) -> None:
    import doctest

    from nonsite import privacy

    monkeypatch.setenv("NONSITE_PLATE_SECRET", "one-secret")
    key = privacy.plate_key("京A88731")
    assert key == privacy.plate_key("京A88731") and len(key) == 32 and int(key, 16) >= 0
    assert key != privacy.plate_key("京A88732")
    assert "京A88731" not in key and "88731" not in key
    monkeypatch.setenv("NONSITE_PLATE_SECRET", "another-secret")
    assert privacy.plate_key("京A88731") != key
    monkeypatch.delenv("NONSITE_PLATE_SECRET")
    assert privacy.plate_key("京A88731") == privacy.plate_key("京A88731", secret=privacy.DEVELOPMENT_SECRET)
    assert doctest.testmod(privacy).failed == 0


def test_repeat_offenders_count_by_key_and_keep_no_plate() -> None:
    model = ReadModel()
    plates = ["京A88731", "京A88731", "京A88731", "沪B12345", "粤C99999", "粤C99999"]
    for index, plate in enumerate(plates):
        record = msgspec.structs.replace(make_incident(incident_id=f"p{index}"), plate=plate,
                                         state="REJECTED" if index == 5 else "DISPATCHED")
        model.apply("incidents", record)
    model.apply("incidents", make_incident(incident_id="no-plate"))

    class City:  # what case_facts asks of the city
        def scenario(self, _):
            return None

    facts = reports.case_facts(City(), model)
    assert not any(plate in repr(facts) for plate in plates)
    rows = reports.repeat_offenders(facts)
    from nonsite.privacy import plate_key
    assert [(r.plate_key, r.incidents, r.scenarios) for r in rows] == [(plate_key("京A88731"), 3, ["stray_dog"])]
