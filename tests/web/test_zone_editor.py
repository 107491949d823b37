"""The zone editor: ``GET``/``PUT /api/cameras/{id}/zones`` on a copy of the sample configuration (checked with
the loader's models, one line naming the field; operators only; written to cameras.yaml so that
``load_city`` reads it back, the rest of the file as it was; recorded in ``config_changes``), the snapshot it
draws on, and the page in real headless Chromium: draw a polygon, choose its kind, move a point, save.

No Kafka: the app runs with ``start_bus=False``; the cases the snapshot comes from are written straight into
its system of record."""
from __future__ import annotations

import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import cv2
import msgspec
import pytest
import uvicorn
from fastapi.testclient import TestClient

from contract import Evidence
from history.config_changes import changes_of
from history.writer import HistoryWriter
from nonsite.config import City, ConfigError, load_city
from nonsite.evidence import EvidenceStore
from web.app import create_app
from web.auth import Principal

from history_support import T0, make_incident, put
from web_harness import free_port, log_in, save_screenshot

PROJECT = Path(__file__).resolve().parents[2]
OPERATOR = Principal("U001", "ops", "指挥中心值班员 Ops duty operator", "operator")
SUPERVISOR = Principal("U002", "sup", "督查科 Supervision desk", "supervisor")
OFFICER = Principal("O101", "zhangwei", "张伟 Zhang Wei", "officer", "G01")
KERB = [[0, 0.42], [0.3, 0.42], [0.26, 0.56], [0, 0.56]]  # cam-02's zone in the sample file


def city_in(folder: Path) -> City:
    """The sample configuration copied to ``folder/configs``, its database and evidence beside it."""
    shutil.copytree(PROJECT / "configs", folder / "configs")
    city = load_city(folder / "configs")
    history = city.system.history.model_copy(update={"database": str(folder / "history.sqlite")})
    detector = city.detector.model_copy(update={"evidence_dir": str(folder / "evidence")})
    return city.model_copy(update={"system": city.system.model_copy(update={"history": history,
                                                                             "detector": detector})})


@pytest.fixture
def app(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(city_in(tmp_path), start_bus=False)) as client:
        yield client


def headers(client: TestClient, who: Principal) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.app.state.tokens.issue(who)}"}


def cameras_file(client: TestClient) -> Path:
    return client.app.state.city.root / "cameras.yaml"


def put_zones(client: TestClient, camera_id: str, body: object, who: Principal = OPERATOR):
    return client.put(f"/api/cameras/{camera_id}/zones", json=body, headers=headers(client, who))


# ------------------------------------------------------------------ reading
def test_get_answers_the_files_zones_and_the_scenarios_each_kind_enables(app: TestClient) -> None:
    answer = app.get("/api/cameras/cam-04/zones", headers=headers(app, OPERATOR))
    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert view["zones"] == [{"id": "z-street", "kind": "no_vending", "polygon": [[0, 0.3], [1, 0.3], [1, 1], [0, 1]]}]
    assert view["privacy_zones"] == [{"name": "shop window", "polygon": [[0, 0.07], [0.2, 0.04], [0.2, 0.24],
                                                                          [0, 0.38]]}]
    enabled = {k["kind"]: [s["id"] for s in k["scenarios"]] for k in view["kinds"]}
    assert enabled["storefront"] == ["road_occupation"] and enabled["sidewalk"] == ["sidewalk_parking"]
    assert enabled["road"] == [] and enabled["plaza"] == []  # no scenario uses them
    assert [k["kind"] for k in view["kinds"]][-1] == "privacy"
    assert [s["id"] for s in view["anywhere"]] == ["stray_dog"]
    assert view["snapshot"] is None and "next start" in view["applies"]
    assert app.get("/api/cameras/cam-99/zones", headers=headers(app, OPERATOR)).status_code == 404


# ------------------------------------------------------------------ saving
def test_a_save_is_written_to_cameras_yaml_reloadable_and_the_rest_of_the_file_kept(app: TestClient) -> None:
    file = cameras_file(app)
    original = file.read_text(encoding="utf-8")
    version = app.get("/api/cameras/cam-02/zones", headers=headers(app, OPERATOR)).json()["version"]
    zones = [{"id": "z-kerb", "kind": "sidewalk", "polygon": [[0.05, 0.4], [0.31, 0.41], [0.27, 0.58]]},
             {"id": "true", "kind": "no_ads", "polygon": [[0.5, 0.1], [0.9, 0.1], [0.9, 0.3], [0.5, 0.3]]}]
    privacy = [{"name": "二楼窗户 upstairs window: #2", "polygon": [[0.6, 0], [0.8, 0], [0.8, 0.12]]}]
    answer = put_zones(app, "cam-02", {"version": version, "zones": zones, "privacy_zones": privacy})
    assert answer.status_code == 200, answer.text
    assert answer.json()["zones"] == zones and answer.json()["privacy_zones"] == privacy
    assert answer.json()["version"] != version

    reloaded, before = load_city(file.parent), load_city(PROJECT / "configs")
    camera = reloaded.camera("cam-02")
    assert [(z.id, z.kind, [list(p) for p in z.polygon]) for z in camera.zones] == \
        [(z["id"], z["kind"], z["polygon"]) for z in zones]  # "true" stays a string
    assert [(p.name, [list(q) for q in p.polygon]) for p in camera.privacy_zones] == \
        [(p["name"], p["polygon"]) for p in privacy]
    assert camera.model_dump(exclude={"zones", "privacy_zones"}) == \
        before.camera("cam-02").model_dump(exclude={"zones", "privacy_zones"})
    assert [c for c in reloaded.cameras if c.id != "cam-02"] == [c for c in before.cameras if c.id != "cam-02"]
    written = file.read_text(encoding="utf-8")
    kept = [line for line in original.splitlines() if "z-side-walk" not in line and "kind: sidewalk" not in line
            and "polygon: [[0.0, 0.42]" not in line]
    assert [line for line in kept if line not in written.splitlines()] == []  # comments, ${VAR}s, other cameras
    assert file.with_name("cameras.yaml.bak").read_text(encoding="utf-8") == original
    assert not [p.name for p in file.parent.iterdir() if p.name.endswith(".tmp")]


def test_saving_the_zones_unchanged_leaves_the_file_byte_for_byte(app: TestClient) -> None:
    file = cameras_file(app)
    original = file.read_bytes()
    for camera in load_city(file.parent).cameras:
        view = app.get(f"/api/cameras/{camera.id}/zones", headers=headers(app, OPERATOR)).json()
        body = {"version": view["version"], "zones": view["zones"], "privacy_zones": view["privacy_zones"]}
        assert put_zones(app, camera.id, body).status_code == 200
    assert file.read_bytes() == original
    assert not file.with_name("cameras.yaml.bak").exists()  # nothing was written
    assert changes_of(app.app.state.store.engine) == []  # nor recorded


@pytest.mark.parametrize("zones, privacy, error", [
    ([{"id": "z-a", "kind": "sidewalk", "polygon": KERB}, {"id": "z-b", "kind": "sidewalk",
                                                          "polygon": [[0, 0], [1, 1]]}], [],
     "zones[1].polygon: a polygon needs at least 3 points, got 2"),
    ([{"id": "z-a", "kind": "sidewalk", "polygon": [[0, 0], [1.2, 0.1], [0, 1]]}], [],
     "zones[0].polygon: point (1.2, 0.1) is outside the normalised image [0, 1]"),
    ([{"id": "z-a", "kind": "parking", "polygon": KERB}], [], "zones[0].kind: Input should be 'sidewalk'"),
    ([{"id": "z-a", "kind": "sidewalk", "polygon": KERB}, {"id": "z-a", "kind": "no_ads", "polygon": KERB}], [],
     "zones[1].id: duplicate zone id 'z-a'"),
    ([{"id": "z a", "kind": "sidewalk", "polygon": KERB}], [], "zones[0].id: String should match pattern"),
    ([{"id": "z-a", "kind": "sidewalk", "polygon": KERB, "colour": "red"}], [], "zones[0].colour: unknown field"),
    ([{"id": "z-a", "kind": "sidewalk", "polygon": KERB}], [{"name": "w", "polygon": [[0, 0], [0.1, 0]]}],
     "privacy_zones[0].polygon: a polygon needs at least 3 points, got 2"),
])
def test_invalid_zones_are_refused_with_one_line_naming_the_field(app: TestClient, zones, privacy, error) -> None:
    original = cameras_file(app).read_bytes()
    answer = put_zones(app, "cam-02", {"zones": zones, "privacy_zones": privacy})
    assert answer.status_code == 422
    assert answer.json()["error"].startswith(error), answer.json()
    assert "\n" not in answer.json()["error"]
    assert cameras_file(app).read_bytes() == original
    assert changes_of(app.app.state.store.engine) == []


def test_a_change_the_configuration_would_not_load_with_is_refused(app: TestClient, monkeypatch) -> None:
    """The whole folder is loaded with the new file before it is written: a refusal names the file, not the
    scratch folder, and leaves the file as it was."""
    from nonsite.config import saving

    def refusing(folder):
        loaded = load_city(folder)
        if not loaded.camera("cam-02").zones[0].id.startswith("z-"):
            raise ConfigError(f"{Path(folder) / 'cameras.yaml'}: cameras[1].zones[0].id: refused by this test")
        return loaded

    monkeypatch.setattr(saving, "load_city", refusing)
    original = cameras_file(app).read_bytes()
    answer = put_zones(app, "cam-02", {"zones": [{"id": "kerb", "kind": "sidewalk", "polygon": KERB}]})
    assert answer.status_code == 422
    assert answer.json()["error"] == ("cameras.yaml: cameras[1].zones[0].id: refused by this test (the "
                                      "configuration would not load with this change)")
    assert cameras_file(app).read_bytes() == original
    assert changes_of(app.app.state.store.engine) == []
    assert put_zones(app, "cam-02", {"zones": [{"id": "z-kerb", "kind": "sidewalk", "polygon": KERB}]}).status_code \
        == 200


def test_scenarios_no_camera_has_a_zone_for_are_named(app: TestClient) -> None:
    from web.api.zones import unwatched

    assert app.get("/api/cameras/cam-02/zones", headers=headers(app, OPERATOR)).json()["unwatched"] == []
    city = load_city(cameras_file(app).parent)
    without_market = city.model_copy(update={"cameras": [c for c in city.cameras if c.id != "cam-03"]})
    assert [s["id"] for s in unwatched(without_market)] == ["road_occupation", "material_piling", "street_drying",
                                                           "illegal_ads"]


def test_a_save_on_a_changed_file_is_refused(app: TestClient) -> None:
    version = app.get("/api/cameras/cam-02/zones", headers=headers(app, OPERATOR)).json()["version"]
    first = [{"id": "z-first", "kind": "sidewalk", "polygon": KERB}]
    assert put_zones(app, "cam-02", {"version": version, "zones": first}).status_code == 200
    answer = put_zones(app, "cam-02", {"version": version, "zones": [{**first[0], "id": "z-second"}]})
    assert answer.status_code == 409 and "changed since it was read" in answer.json()["error"]
    assert [z.id for z in load_city(cameras_file(app).parent).camera("cam-02").zones] == ["z-first"]
    assert put_zones(app, "cam-02", {"version": 7, "zones": first}).json()["error"].startswith("version:")


def test_every_save_is_recorded_who_when_and_before_after(app: TestClient) -> None:
    zones = [{"id": "z-kerb", "kind": "sidewalk", "polygon": [[0, 0.4], [0.3, 0.4], [0.3, 0.6]]}]
    assert put_zones(app, "cam-02", {"zones": zones}).status_code == 200
    [change] = changes_of(app.app.state.store.engine, "cam-02")
    assert (change.person_id, change.role, change.file, change.what) == ("U001", "operator", "cameras.yaml", "zones")
    assert change.before == {"zones": [{"id": "z-side-walk", "kind": "sidewalk", "polygon": KERB}],
                             "privacy_zones": []}
    assert change.after == {"zones": zones, "privacy_zones": []}
    shown = app.get("/api/cameras/cam-02/zone-changes", headers=headers(app, SUPERVISOR))
    assert shown.status_code == 200
    assert [(c["name"], c["after"]["zones"][0]["id"]) for c in shown.json()] == [(OPERATOR.name, "z-kerb")]


def test_only_operators_read_and_change_zones(app: TestClient) -> None:
    original = cameras_file(app).read_bytes()
    body = {"zones": [{"id": "z-x", "kind": "sidewalk", "polygon": KERB}]}
    assert app.get("/api/cameras/cam-02/zones").status_code == 401
    assert app.put("/api/cameras/cam-02/zones", json=body).status_code == 401
    for who in (SUPERVISOR, OFFICER):
        assert app.get("/api/cameras/cam-02/zones", headers=headers(app, who)).status_code == 403
        answer = put_zones(app, "cam-02", body, who)
        assert answer.status_code == 403 and "needs operator" in answer.json()["error"]
    assert app.get("/api/cameras/cam-02/zone-changes", headers=headers(app, OFFICER)).status_code == 403
    assert cameras_file(app).read_bytes() == original
    assert changes_of(app.app.state.store.engine) == []


# ------------------------------------------------------------------ the snapshot
def stored_frame(store: EvidenceStore, image, kind: str, with_public_copy: bool = True) -> tuple[Evidence, str]:
    """A picture stored with masked copies (blurred, so their bytes differ); returns it and its public sha."""
    original = store.put(cv2.imencode(".jpg", image)[1].tobytes(), kind)
    subject = store.put(cv2.imencode(".jpg", cv2.blur(image, (3, 3)))[1].tobytes(), kind)
    public = store.put(cv2.imencode(".jpg", cv2.blur(image, (5, 5)))[1].tobytes(), kind)
    masked = {"subject": subject.sha256, **({"public": public.sha256} if with_public_copy else {})}
    return msgspec.structs.replace(original, masked=masked), public.sha256


def record_cases(client: TestClient, *cases) -> None:
    put(HistoryWriter(client.app.state.store.engine, "Asia/Shanghai", "nonsite.feedback"), *cases)


def test_the_snapshot_is_the_newest_whole_frame_of_the_camera_in_its_public_copy(app: TestClient,
                                                                                   media_dir: Path) -> None:
    store = app.app.state.evidence
    image = cv2.imread(str(media_dir / "cctv_street_busstop_parked_cars_beijing_uadetrac_06.jpg"))
    older, _ = stored_frame(store, image, "first_seen")
    annotated, wanted = stored_frame(store, image[:, ::-1].copy(), "annotated")
    plate, _ = stored_frame(store, image[:40, :120].copy(), "plate")
    no_public, _ = stored_frame(store, image[::-1].copy(), "first_seen", with_public_copy=False)
    shared, _ = stored_frame(store, image[::2, ::2].copy(), "first_seen")
    record_cases(app,
                 make_incident(incident_id="old", camera_id="cam-02", evidence=[older], first_seen=T0),
                 make_incident(incident_id="new", camera_id="cam-02", evidence=[plate, annotated],
                               first_seen=T0 + timedelta(hours=1)),
                 make_incident(incident_id="unmasked", camera_id="cam-02", evidence=[no_public],
                               first_seen=T0 + timedelta(hours=2)),
                 make_incident(incident_id="two-cameras", camera_id="cam-02", cameras=["cam-02", "cam-01"],
                               evidence=[shared], first_seen=T0 + timedelta(hours=3)))
    snapshot = app.get("/api/cameras/cam-02/zones", headers=headers(app, OPERATOR)).json()["snapshot"]
    assert (snapshot["incident_id"], snapshot["kind"], snapshot["sha256"]) == ("new", "annotated", wanted)
    picture = app.get(snapshot["url"], headers=headers(app, OPERATOR))
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
    assert app.get("/api/cameras/cam-03/zones", headers=headers(app, OPERATOR)).json()["snapshot"] is None


# ------------------------------------------------------------------ the page, in real Chromium
@pytest.fixture
def served(tmp_path: Path, media_dir: Path) -> Iterator[tuple[str, City, object]]:
    """The app on a free port (uvicorn, no Kafka), with a case of cam-02 whose picture is the bus stop."""
    city = city_in(tmp_path)
    web = create_app(city, start_bus=False)
    image = cv2.imread(str(media_dir / "cctv_street_busstop_parked_cars_beijing_uadetrac_06.jpg"))
    frame, public = stored_frame(EvidenceStore(tmp_path / "evidence"), image, "first_seen")
    put(HistoryWriter(web.state.store.engine, "Asia/Shanghai", "nonsite.feedback"),
        make_incident(incident_id="bus-stop", camera_id="cam-02", evidence=[frame]))
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the web app did not start"
    yield f"http://127.0.0.1:{server.config.port}", city, public
    server.should_exit = True
    thread.join(15)


def click_at(page, x: float, y: float) -> None:
    """A click at normalised image coordinates on the editor's picture."""
    box = page.locator("#overlay").bounding_box()
    page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])


@pytest.mark.slow
def test_the_page_draws_a_zone_chooses_its_kind_moves_a_point_and_saves(served, browser, shots: Path) -> None:
    base_url, city, public = served
    page = log_in(browser, base_url, "ops", height=860)
    page.goto(f"{base_url}/zones?camera=cam-02")
    page.wait_for_selector("li[data-zone='z-side-walk']")
    page.wait_for_function("() => document.getElementById('snapshot').naturalWidth > 0")
    assert public in page.get_attribute("#snapshot", "src")  # the public masked copy, never the original
    assert "下次启动" in page.inner_text("#applies")

    page.click("#new")
    for x, y in ((0.55, 0.55), (0.95, 0.55), (0.95, 0.9), (0.55, 0.9)):
        click_at(page, x, y)
    page.click("#finish")
    row = "li[data-index='1']"
    page.select_option(f"{row} select.kind", "storefront")
    page.fill(f"{row} input.name", "z-shop")
    assert "占道经营" in page.inner_text(f"{row} .enables")
    page.wait_for_selector("#preview li[data-scenario='road_occupation']:has-text('z-shop')")
    page.wait_for_selector("#preview li[data-scenario='sidewalk_parking']:has-text('z-side-walk')")
    page.wait_for_selector("#preview li[data-scenario='stray_dog']:has-text('whole frame')")

    page.click("#new")
    for x, y in ((0.7, 0.02), (0.9, 0.02), (0.9, 0.15)):
        click_at(page, x, y)
    page.click("#finish")
    page.select_option("li[data-index='2'] select.kind", "privacy")
    page.fill("li[data-index='2'] input.name", "upstairs window")
    assert "涂黑" in page.inner_text("li[data-index='2'] .enables")

    page.click("li[data-index='0'] .enables")  # select the kerb zone: its corners get handles
    corner = page.locator("circle.handle[data-p='1']").bounding_box()
    box = page.locator("#overlay").bounding_box()
    page.mouse.move(corner["x"] + corner["width"] / 2, corner["y"] + corner["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.4 * box["width"], box["y"] + 0.45 * box["height"], steps=5)
    page.mouse.up()
    assert page.is_visible("#dirty")
    save_screenshot(page, shots, "zones")
    page.click("#save")
    page.wait_for_selector(".result.applied:has-text('已保存')")
    assert page.is_hidden("#dirty")
    page.wait_for_selector("#changes li:has-text('1/0 → 2/1')")

    page.reload()
    page.wait_for_selector("li[data-zone='z-shop']")
    assert page.eval_on_selector("li[data-zone='z-shop'] select.kind", "s => s.value") == "storefront"
    assert page.eval_on_selector("li[data-zone='upstairs window'] select.kind", "s => s.value") == "privacy"
    page.context.close()

    camera = load_city(city.root).camera("cam-02")
    kerb, shop = camera.zones
    assert (kerb.id, shop.id, shop.kind) == ("z-side-walk", "z-shop", "storefront")
    assert kerb.polygon[1] == pytest.approx((0.4, 0.45), abs=0.01)  # the corner moved
    drawn = [(0.55, 0.55), (0.95, 0.55), (0.95, 0.9), (0.55, 0.9)]
    assert [coordinate for point in shop.polygon for coordinate in point] == \
        pytest.approx([coordinate for point in drawn for coordinate in point], abs=0.01)
    [window] = camera.privacy_zones
    assert window.name == "upstairs window" and len(window.polygon) == 3
