"""Labelled crops of camera spots in the system of record (issue 10, item 4), on SQLite and PostgreSQL: which case
events label a spot and with which picture, the crop is the detector's cut of the zone from the real evidence
picture, stored under its sha256 and linked to its case, a replay adds nothing, what cannot be cut is no label.
And the operators' retrain endpoint's refusals (one line each)."""
from __future__ import annotations

import hashlib

import cv2
import pytest
from sqlalchemy import select

from contract import CaseEvent, Evidence, Incident, new_id
from history import schema
from history.database import open_database
from history.spot_labels import labels
from history.writer import HistoryWriter, Positioned
from nonsite.crops import zone_crop
from nonsite.evidence import EvidenceStore
from web.spot_labels import spot_labeller

CAMERA, ZONE = "cam-03", "z-corner"  # the sample city's no_piling zone
PHOTO = "garbage_bags_pile_sidewalk_amsterdam_01.jpg"


@pytest.fixture
def recorded(database_setting, city, tmp_path):
    engine = open_database(database_setting)
    store = EvidenceStore(tmp_path / "evidence")
    writer = HistoryWriter(engine, "Asia/Shanghai", "nonsite.feedback",
                           labeller=spot_labeller(city, store, engine.dialect.name))
    yield writer, store
    engine.dispose()


def picture(store: EvidenceStore, image, kind: str) -> Evidence:
    ok, data = cv2.imencode(".jpg", image)
    return store.put(data.tobytes(), kind)


def case(evidence: list[Evidence], scenario: str = "material_piling", zone: str = ZONE) -> Incident:
    return Incident(incident_id=new_id(), camera_id=CAMERA, scenario=scenario, zone_id=zone, grid_id="G01",
                    state="DETECTED", first_seen="2026-12-01T08:00:00Z", last_seen="2026-12-01T08:00:00Z",
                    updated_at="2026-12-01T08:00:00Z", evidence=evidence)


def event(incident: Incident, action: str, to_state: str, applied: bool = True, actor: str = "ops") -> CaseEvent:
    return CaseEvent(event_id=new_id(), incident_id=incident.incident_id, seq=4, at="2026-12-01T09:00:00Z",
                     actor=actor, action=action, from_state="DISPATCHED", to_state=to_state, applied=applied)


def write(writer: HistoryWriter, *records, start: int = 0) -> None:
    writer.write([Positioned(r, "t", 0, start + i) for i, r in enumerate(records)])


def test_decisions_become_labelled_crops_of_the_spot(recorded, media_dir, city):
    writer, store = recorded
    photo = cv2.imread(str(media_dir / PHOTO))
    gone = cv2.GaussianBlur(photo, (31, 31), 0)  # stands in for the spot once cleared
    first, annotated, clean = picture(store, photo, "first_seen"), picture(store, photo[::2, ::2], "annotated"), \
        picture(store, gone, "clean")
    rejected, confirmed, dismissed, refused = (case([annotated, first]) for _ in range(4))
    verified = case([annotated, first, clean])  # the detector's picture of the spot at the end
    parking = case([annotated, first], scenario="sidewalk_parking", zone="z-walk")  # no scene head: no crop kept
    events = [event(rejected, "reject", "REJECTED", actor="O101"), event(confirmed, "confirm", "DISPATCHED"),
              event(dismissed, "dismiss", "DISMISSED"), event(verified, "verify", "VERIFIED", actor="camera"),
              event(refused, "reject", "REJECTED", applied=False), event(parking, "reject", "REJECTED")]
    write(writer, rejected, confirmed, dismissed, verified, refused, parking, *events)

    got = {(x.incident_id, x.label, x.action, x.labelled_by) for x in labels(writer.engine)}
    assert got == {(rejected.incident_id, "absent", "reject", "O101"),
                   (confirmed.incident_id, "present", "confirm", "ops"),
                   (dismissed.incident_id, "absent", "dismiss", "ops"),
                   (verified.incident_id, "present", "verify", "camera"),
                   (verified.incident_id, "absent", "verify", "camera")}
    expected = zone_crop(photo, next(z for z in city.camera(CAMERA).zones if z.id == ZONE).polygon)
    by_label = {(x.incident_id, x.label): x for x in labels(writer.engine, CAMERA)}
    crop = store.locate(by_label[(rejected.incident_id, "absent")].crop_sha256)
    assert crop is not None and hashlib.sha256(crop.read_bytes()).hexdigest() == crop.stem
    assert cv2.imread(str(crop)).shape == expected.shape  # the detector's cut of the zone, from the clean picture
    assert by_label[(verified.incident_id, "present")].crop_sha256 != by_label[(verified.incident_id,
                                                                                "absent")].crop_sha256
    with writer.engine.connect() as connection:  # linked to its case: custody and retention treat it as evidence
        linked = set(connection.execute(select(schema.evidence.c.sha256).where(
            schema.evidence.c.incident_id == rejected.incident_id)).scalars())
    assert by_label[(rejected.incident_id, "absent")].crop_sha256 in linked

    write(writer, *events, start=100)  # a replay: the same rows
    assert len(labels(writer.engine)) == 5


def test_a_picture_no_longer_stored_is_no_label_and_the_event_is_recorded(recorded):
    writer, store = recorded
    lost = Evidence(kind="first_seen", sha256="ab" * 32, uri="ab/lost.jpg")
    incident = case([lost])
    rejection = event(incident, "reject", "REJECTED")
    write(writer, incident, rejection)
    assert labels(writer.engine) == []
    with writer.engine.connect() as connection:
        assert list(connection.execute(select(schema.case_events.c.event_id))
                    .scalars()) == [rejection.event_id]


def web_client(city, tmp_path):
    """A web app (no Kafka) over the database and evidence store of ``tmp_path``, and a login for it."""
    from fastapi.testclient import TestClient

    from web.app import create_app

    history = city.system.history.model_copy(update={"database": str(tmp_path / "h.sqlite")})
    detector = city.detector.model_copy(update={"evidence_dir": str(tmp_path / "evidence")})
    local = city.model_copy(update={"system": city.system.model_copy(update={"history": history,
                                                                             "detector": detector})})
    return TestClient(create_app(local, start_bus=False))


def login(client, name: str) -> dict:
    from web_harness import PASSWORDS

    answer = client.post("/api/login", json={"username": name, "password": PASSWORDS[name]})
    assert answer.status_code == 200, answer.text
    client.cookies.clear()  # bearer tokens only, as the harness does
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_the_retrain_endpoint_refuses_with_one_line(city, tmp_path):
    with web_client(city, tmp_path) as client:
        ops, officer = login(client, "ops"), login(client, "zhangwei")
        assert client.post("/api/spots/train", json={"camera_id": "cam-03"}, headers=officer).status_code == 403
        unknown = client.post("/api/spots/train", json={"camera_id": "cam-99"}, headers=ops)
        assert unknown.status_code == 404 and unknown.json()["error"] == "camera_id: unknown camera 'cam-99'"
        empty = client.post("/api/spots/train", json={"camera_id": "cam-03"}, headers=ops)
        assert empty.status_code == 409
        assert empty.json()["error"].startswith("camera 'cam-03' has no labelled crops yet")
        assert client.get("/api/spots", headers=ops).json() == []


def test_a_spot_crop_is_opened_as_an_unmasked_original(city, tmp_path, media_dir):
    """A crop is cut from the original picture: like the original, only a handler with a stated reason opens it."""
    engine = open_database(str(tmp_path / "h.sqlite"))
    store = EvidenceStore(tmp_path / "evidence")
    writer = HistoryWriter(engine, "Asia/Shanghai", "nonsite.feedback", labeller=spot_labeller(city, store, "sqlite"))
    rejected = case([picture(store, cv2.imread(str(media_dir / PHOTO)), "first_seen")])
    write(writer, rejected, event(rejected, "reject", "REJECTED", actor="O101"))
    [label] = labels(engine)
    engine.dispose()
    with web_client(city, tmp_path) as client:
        url = f"/api/evidence/{label.crop_sha256}"
        refused = client.get(url, headers=login(client, "sup"))
        assert refused.status_code == 403 and "unmasked" in refused.json()["error"]
        ops = login(client, "ops")
        assert client.get(url, headers=ops).status_code == 422  # no reason given
        opened = client.get(url, params={"reason": "checking a label"}, headers=ops)
        assert opened.status_code == 200 and hashlib.sha256(opened.content).hexdigest() == label.crop_sha256
