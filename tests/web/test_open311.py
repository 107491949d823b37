"""Open311 GeoReport v2 against the running app on the local Kafka: services from the scenarios, requests
filtered by service, status and filing dates, paged, one request by id, the deadline as expected_datetime,
GeoReport's errors, and no personal data anywhere in the answers (checked on the raw text)."""
from __future__ import annotations

import re
from datetime import timedelta, timezone
from typing import Optional

import httpx
import pytest

from contract import Incident, parse_iso
from web_harness import WebHarness, dispatched_case, incident, now, start_web, stored_evidence

pytestmark = [pytest.mark.kafka]
PLATE = "浙B54321"
SHANGHAI = timezone(timedelta(hours=8))  # the sample city's offset


@pytest.fixture(scope="module")
def web(kafka_bootstrap: str, city, tmp_path_factory) -> WebHarness:
    harness = start_web(city, kafka_bootstrap, tmp_path_factory.mktemp("evidence"), outcome_wait_s=0.2)
    yield harness
    harness.stop()


@pytest.fixture(scope="module")
def cases(web: WebHarness) -> dict[str, Incident]:
    """Cases of two scenarios, open, closed and rejected, filed from 120 days to an hour ago, with plates,
    officers, tasks and evidence (which must not show)."""
    picture = stored_evidence(web)
    wanted = {  # name: (scenario, state, days ago)
        "dog_open": ("stray_dog", "DISPATCHED", 0.05), "dog_closed": ("stray_dog", "CLOSED", 3),
        "parking_open": ("sidewalk_parking", "ARRIVED", 10), "parking_rejected": ("sidewalk_parking", "REJECTED", 40),
        "parking_self": ("sidewalk_parking", "SELF_CORRECTED", 80), "vendor_old": ("mobile_vendor", "CLOSED", 120),
    }
    made = {}
    for name, (scenario, state, days) in wanted.items():
        made[name], _ = dispatched_case(web, "O101", scenario=scenario, state=state, plate=PLATE, evidence=[picture],
                                        first_seen=now() - timedelta(days=days))
    no_deadline = incident(scenario="mobile_vendor", state="DETECTED", officer_id=None, first_seen=now() - timedelta(
        days=1))
    made["vendor_waiting"] = Incident.from_dict({**no_deadline.asdict_deep(), "deadline": None})
    web.publish("incidents", made["vendor_waiting"])
    web.wait_for(lambda: web.app.state.store.incident(made["vendor_waiting"].incident_id), what="the last case")
    return made


def get(web: WebHarness, path: str, **params: str) -> httpx.Response:
    return web.client().get(f"/open311/v2/{path}", params=params)  # anonymous: the API is public


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [request["service_request_id"] for request in answer.json()]


def names(cases: dict[str, Incident], answer: httpx.Response) -> list[str]:
    by_id = {case.incident_id: name for name, case in cases.items()}
    return [by_id[i] for i in ids(answer)]


def local(days_ago: float) -> str:
    """A filing bound in the city's time with its offset, as a hotline would send it."""
    return (now() - timedelta(days=days_ago)).astimezone(SHANGHAI).isoformat(timespec="seconds")


def test_services_are_the_scenarios(web: WebHarness) -> None:
    answer = get(web, "services.json")
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "*"
    services = answer.json()
    assert [s["service_code"] for s in services] == [s.id for s in web.city.scenarios]
    parking = services[0]
    assert parking == {"service_code": "sidewalk_parking",
                       "service_name": "人行道机动车违停 Motor vehicle parked on the sidewalk",
                       "description": parking["description"], "metadata": False, "type": "realtime",
                       "keywords": "sidewalk_parking, 0505, sidewalk", "group": "街面秩序 Street order"}
    assert "30 minutes" in parking["description"]
    assert all(s["metadata"] is False and s["type"] == "realtime" and s["group"] for s in services)


def test_requests_are_newest_first_within_the_last_90_days_by_default(web: WebHarness, cases) -> None:
    assert names(cases, get(web, "requests.json")) == ["dog_open", "vendor_waiting", "dog_closed", "parking_open",
                                                       "parking_rejected", "parking_self"]


def test_requests_by_status(web: WebHarness, cases) -> None:
    assert names(cases, get(web, "requests.json", status="open")) == ["dog_open", "vendor_waiting", "parking_open"]
    assert names(cases, get(web, "requests.json", status="closed")) == ["dog_closed", "parking_rejected",
                                                                        "parking_self"]
    assert len(ids(get(web, "requests.json", status="open,closed"))) == 6
    statuses = {r["service_request_id"]: r["status"] for r in get(web, "requests.json").json()}
    assert statuses[cases["parking_rejected"].incident_id] == "closed"  # a false alarm is finished too


def test_requests_by_service_code(web: WebHarness, cases) -> None:
    assert names(cases, get(web, "requests.json", service_code="stray_dog")) == ["dog_open", "dog_closed"]
    assert names(cases, get(web, "requests.json", service_code="stray_dog,mobile_vendor", status="open")) == [
        "dog_open", "vendor_waiting"]
    assert ids(get(web, "requests.json", service_code="illegal_ads")) == []


def test_requests_by_filing_dates(web: WebHarness, cases) -> None:
    assert names(cases, get(web, "requests.json", start_date=local(50), end_date=local(2))) == [
        "dog_closed", "parking_open", "parking_rejected"]
    assert names(cases, get(web, "requests.json", start_date=local(130), end_date=local(70))) == [
        "parking_self", "vendor_old"]
    assert names(cases, get(web, "requests.json", start_date=local(125))) == [  # to 35 days ago
        "parking_rejected", "parking_self", "vendor_old"]
    assert names(cases, get(web, "requests.json", end_date=local(75))) == ["parking_self", "vendor_old"]
    utc = (now() - timedelta(days=2)).isoformat().replace("+00:00", "Z")
    assert names(cases, get(web, "requests.json", start_date=utc, service_code="stray_dog")) == ["dog_open"]


def test_requests_come_in_pages_with_a_link_to_the_next(web: WebHarness, cases) -> None:
    seen: list[str] = []
    answer = get(web, "requests.json", page_size="4")
    while True:
        seen += ids(answer)
        link: Optional[str] = answer.headers.get("link")
        if link is None:
            break
        answer = web.client().get(re.match(r'<([^>]+)>; rel="next"', link).group(1))
    assert seen == ids(get(web, "requests.json")) and len(seen) == 6
    assert len(ids(get(web, "requests.json", page_size="4", page="2"))) == 2
    assert ids(get(web, "requests.json", page_size="4", page="3")) == []


def test_one_request_by_id(web: WebHarness, cases) -> None:
    case = cases["parking_open"]
    answer = get(web, f"requests/{case.incident_id}.json")
    assert answer.status_code == 200
    [request] = answer.json()
    assert request["service_request_id"] == case.incident_id and request["status"] == "open"
    assert request["service_code"] == "sidewalk_parking" and request["service_name"].endswith("on the sidewalk")
    assert request["status_notes"] == "队员已到场 Officer on site" and request["media_url"] is None
    assert request["agency_responsible"] == "示例县级市 Sample County-level City"
    assert parse_iso(request["requested_datetime"]) == parse_iso(case.first_seen)
    assert request["requested_datetime"].endswith("+08:00")
    filed = request["requested_datetime"]  # to the millisecond: sent back as both bounds, it finds the case
    assert ids(get(web, "requests.json", start_date=filed, end_date=filed)) == [case.incident_id]
    camera = web.city.camera(case.camera_id)
    assert (request["address"], request["lat"], request["long"]) == (camera.location.address, camera.location.lat,
                                                                     camera.location.lon)
    old = get(web, f"requests/{cases['vendor_old'].incident_id}.json")  # by id, whatever its age
    assert ids(old) == [cases["vendor_old"].incident_id]
    several = get(web, "requests.json", service_request_id=f"{case.incident_id},{cases['vendor_old'].incident_id}")
    assert sorted(ids(several)) == sorted([case.incident_id, cases["vendor_old"].incident_id])


def test_expected_datetime_is_the_deadline(web: WebHarness, cases) -> None:
    for request in get(web, "requests.json", start_date=local(130), end_date=local(41)).json():
        case = next(c for c in cases.values() if c.incident_id == request["service_request_id"])
        assert parse_iso(request["expected_datetime"]) == parse_iso(case.deadline)
    waiting = cases["vendor_waiting"]  # no deadline yet: filing + the scenario's SLA, as the reports count it
    [request] = get(web, f"requests/{waiting.incident_id}.json").json()
    sla = web.city.scenario("mobile_vendor").sla_minutes
    expected = parse_iso(waiting.first_seen) + timedelta(minutes=sla)
    assert parse_iso(request["expected_datetime"]) == expected


def test_no_personal_data_in_any_answer(web: WebHarness, cases) -> None:
    officer = web.city.officers[0]
    everything = [get(web, "requests.json", start_date=local(130), end_date=local(41)),
                  get(web, "requests.json")] + [get(web, f"requests/{c.incident_id}.json") for c in cases.values()]
    picture = cases["dog_open"].evidence[0].sha256
    for answer in everything:
        assert answer.status_code == 200
        text = answer.text
        for personal in (PLATE, officer.id, officer.name, "Zhang Wei", officer.phone, picture, "/api/evidence"):
            assert personal not in text, personal
        assert all(set(r) == set(answer.json()[0]) for r in answer.json())
        assert not any(key in r for r in answer.json() for key in ("plate", "officer_id", "task_id", "evidence"))


@pytest.mark.parametrize("path,params,code,starts", [
    ("services.xml", {}, 400, "format 'xml' is not supported"),
    ("requests.xml", {}, 400, "format 'xml' is not supported"),
    ("requests.json", {"status": "pending"}, 400, "status: expected open, closed"),
    ("requests.json", {"start_date": "yesterday"}, 400, "start_date: 'yesterday' is not an ISO 8601"),
    ("requests.json", {"start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-06-01T00:00:00+08:00"}, 400,
     "start_date..end_date: may not span more than 90 days"),
    ("requests.json", {"start_date": "2026-06-01T00:00:00Z", "end_date": "2026-05-01T00:00:00Z"}, 400,
     "end_date: before start_date"),
    ("requests.json", {"page_size": "1001"}, 400, "page_size: expected a whole number from 1 to 1000"),
    ("requests.json", {"page": "0"}, 400, "page: expected a whole number"),
    ("requests/nothing-here.json", {}, 404, "service_request_id: no request 'nothing-here'"),
])
def test_errors_are_georeport_errors(web: WebHarness, path: str, params: dict, code: int, starts: str) -> None:
    answer = get(web, path, **params)
    assert answer.status_code == code
    [error] = answer.json()
    assert error["code"] == code and error["description"].startswith(starts), error


def test_an_unencoded_plus_in_a_date_is_read_as_the_offset(web: WebHarness, cases) -> None:
    bound = local(50)
    raw = web.client().get(f"/open311/v2/requests.json?start_date={bound}&end_date={local(2)}")  # "+" -> " "
    assert names(cases, raw) == ["dog_closed", "parking_open", "parking_rejected"]


def test_the_openapi_document_lists_open311(web: WebHarness) -> None:
    paths = web.client().get("/openapi.json").json()["paths"]
    assert {"/open311/v2/services.{fmt}", "/open311/v2/requests.{fmt}",
            "/open311/v2/requests/{request_id}.{fmt}"} <= set(paths)
