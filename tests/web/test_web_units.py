"""Pure parts of the web, without Kafka: tokens, logins, views and response models, the evidence store."""
from __future__ import annotations

import hashlib

import msgspec
import pytest

from contract import Alert, CaseEvent, to_iso
from nonsite.evidence import EvidenceStore
from web import uploads
from web import reports
from web.auth import Principal, TokenIssuer, find_login

from history_support import T0, make_incident, new_store, put


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

    writer, store = new_store()
    put(writer, make_incident(), msgspec.structs.replace(make_incident(incident_id="i2"), lat=30, lon=120.5))
    task = Task(task_id="t1", incident_id="i1", officer_id="O101", grid_id="G01", scenario="stray_dog",
                assigned_at=to_iso(T0), accept_by=to_iso(T0), deadline=to_iso(T0))
    orphan = Task(task_id="t2", incident_id="nowhere", officer_id="O101", grid_id="G01", scenario="stray_dog",
                  assigned_at=to_iso(T0), accept_by=to_iso(T0), deadline=to_iso(T0))
    views = [(schemas.IncidentView, incident_view(city, store, store.incident(i))) for i in ("i1", "i2")]
    views += [(schemas.TaskView, task_view(city, store, t)) for t in (task, orphan)]
    views += [(schemas.Camera, row) for row in camera_view(city, store)]
    for response_model, view in views:
        assert answer(response_model, view) == view
        assert set(view) <= set(response_model.model_fields), set(view) - set(response_model.model_fields)
    assert list(answer(schemas.IncidentView, views[0][1])) == list(views[0][1])  # same order too


def test_report_models_keep_from_and_to(city) -> None:
    from web.api import schemas

    total = reports.Figures("total", "合计 Total", filed=2, false_alarms=1, closed=1, on_time=1).as_dict()
    summary = {"from": "2026-10-01", "to": "2026-10-31", "by": "grid", "rows": [total], "total": total}
    assert schemas.Summary.model_validate(summary).model_dump(by_alias=True, exclude_unset=True) == summary
    ranking = reports.ranking([reports.Figures("x", "X", filed=3)], 1)
    ranked = {"from": "a", "to": "b", "by": "officer", **ranking.as_dict()}
    dumped = schemas.Ranking.model_validate(ranked).model_dump(by_alias=True, exclude_unset=True)
    assert dumped == ranked and list(dumped["ranked"][0])[0] == "rank"


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
