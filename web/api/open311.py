"""Open311 GeoReport v2, read only: the city's cases as service requests, for 12345 hotlines and civic apps.

Each scenario is a service (``service_code`` = the scenario id) and each case a request
(``service_request_id`` = the incident id).  Nothing personal is in it: no plate, no officer, no
picture, no free text anyone typed; ``status_notes`` is a fixed text per state.  It needs no login
(docs/web.md says why) and answers in JSON only; errors are GeoReport's ``[{"code", "description"}]``.

Example::

    GET /open311/v2/requests.json?service_code=sidewalk_parking&status=open&start_date=2026-10-01T00:00:00%2B08:00
    -> [{"service_request_id": "9f2c…", "status": "open", "service_code": "sidewalk_parking",
         "requested_datetime": "2026-10-03T10:00:00.000+08:00",
         "expected_datetime": "2026-10-03T10:31:00.000+08:00", …}]
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Optional
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from history.facts import TERMINAL_STATES, as_utc, naive_utc
from history.queries import CaseFacts, FiledCases
from nonsite.config import City
from nonsite.config.city_files import Scenario
from web.api.deps import city_of, store_of
from web.api.schemas import Open311Error, Open311Request, Open311Service

router = APIRouter(prefix="/open311/v2", tags=["open311"])
MAX_PAGE_SIZE = 1000  # GeoReport's default cap on one answer
WINDOW_DAYS = 90  # GeoReport's default and widest span of start_date..end_date
MAX_CODES = 50
# "+08:00" sent unencoded in a query string arrives as " 08:00": after a time, such a space is the plus
UNENCODED_PLUS = re.compile(r"(\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")
FORMAT_ERROR = "this server answers GeoReport v2 in JSON only: use .json"
# Fixed texts: an officer's note or a rejection reason may name people or plates, so none is passed on.
STATUS_NOTES = {
    "DETECTED": "已发现，待派遣 Detected, waiting for an officer",
    "DISPATCHED": "已派遣执法队员 Dispatched to an officer", "ACCEPTED": "队员已接单 Accepted by an officer",
    "ARRIVED": "队员已到场 Officer on site", "RESOLVED": "已处置，待核查 Handled, to be verified",
    "REOPENED": "核查未通过，重新处置 Verification failed, handled again",
    "ESCALATED": "已升级督办 Escalated", "VERIFIED": "已核查结案 Verified and closed",
    "CLOSED": "已结案 Closed", "SELF_CORRECTED": "当事人已自行整改 Corrected before an officer was needed",
    "REJECTED": "经核实不构成违规（误报）Not a violation (false alarm)",
}  # alarms awaiting review or dismissed in review are no cases: never listed (history.queries.filed_cases)
# CJ/T 214 event categories, by the first two digits of a scenario's code
GROUPS = {"02": "宣传广告 Advertising", "05": "街面秩序 Street order"}
OTHER_GROUP = "其他 Other"
# public data: any web page may read it (no cookie is ever used here), and a minute's caching spares the database
PUBLIC_HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=60"}
ERRORS = {400: {"model": list[Open311Error]}, 404: {"model": list[Open311Error]}}


class Refused(Exception):
    """A request this API cannot answer: its HTTP code and GeoReport's description."""

    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code, self.description = code, description


def refusal(problem: Refused) -> JSONResponse:
    return JSONResponse([{"code": problem.code, "description": problem.description}], status_code=problem.code,
                        headers=PUBLIC_HEADERS)


def answer(body: Any, headers: Optional[dict[str, str]] = None) -> JSONResponse:
    return JSONResponse(body, headers={**PUBLIC_HEADERS, **(headers or {})})


def check_format(fmt: str) -> None:
    if fmt != "json":
        raise Refused(400, f"format '{fmt[:20]}' is not supported: {FORMAT_ERROR}")


# ------------------------------------------------------------------ services
def service(scenario: Scenario) -> dict[str, Any]:
    return {"service_code": scenario.id, "service_name": f"{scenario.label_zh} {scenario.label_en}",
            "description": f"{scenario.label_zh}：由城管摄像头发现，{scenario.sla_minutes} 分钟内处置。"
                           f"{scenario.label_en}: found by a city camera, to be handled within "
                           f"{scenario.sla_minutes} minutes.",
            "metadata": False, "type": "realtime",
            "keywords": ", ".join(word for word in (scenario.id, scenario.code, *scenario.zone_kinds) if word),
            "group": GROUPS.get(scenario.code[:2], OTHER_GROUP)}


@router.get("/services.{fmt}", response_model=list[Open311Service], responses=ERRORS,
            summary="GeoReport v2: every scenario as a service (public, JSON only)")
def services(fmt: str, request: Request) -> JSONResponse:
    try:
        check_format(fmt)
    except Refused as problem:
        return refusal(problem)
    return answer([service(scenario) for scenario in city_of(request).scenarios])


# ------------------------------------------------------------------ requests
def local_text(moment: Optional[datetime], tz: ZoneInfo) -> Optional[str]:
    """A naive UTC moment as ISO 8601 in the city's time with its offset (``2026-10-03T10:00:00.000+08:00``), to
    the millisecond as filed: a time read here and sent back as start_date or end_date finds the same case."""
    return as_utc(moment).astimezone(tz).isoformat(timespec="milliseconds") if moment else None


def service_request(city: City, case: CaseFacts) -> dict[str, Any]:
    """One case as a GeoReport request: only what anyone in the street could see, and the bureau's timings."""
    incident, tz = case.incident, ZoneInfo(city.system.city.timezone)
    scenario, camera = city.scenario(incident.scenario), city.camera(incident.camera_id)
    label = f"{scenario.label_zh} {scenario.label_en}" if scenario else incident.scenario
    state = incident.state.upper()
    names = city.system.city
    return {
        "service_request_id": incident.incident_id,
        "status": "closed" if state in TERMINAL_STATES else "open",
        "status_notes": STATUS_NOTES.get(state, state),
        "service_name": label, "service_code": incident.scenario, "description": label,
        "agency_responsible": f"{names.name_zh} {names.name}".strip(), "service_notice": None,
        "requested_datetime": local_text(naive_utc(incident.first_seen), tz),
        "updated_datetime": local_text(naive_utc(incident.updated_at), tz),
        "expected_datetime": local_text(case.deadline_at, tz),
        "address": incident.address or (camera.location.address if camera else ""), "address_id": None,
        "zipcode": None,
        "lat": incident.lat if incident.lat is not None else (camera.location.lat if camera else None),
        "long": incident.lon if incident.lon is not None else (camera.location.lon if camera else None),
        "media_url": None,  # pictures of the street show people: never published here
    }


def moment(text: Optional[str], name: str, tz: ZoneInfo) -> Optional[datetime]:
    """An ISO 8601 parameter as naive UTC; without an offset it is the city's local time."""
    if text is None:
        return None
    text = UNENCODED_PLUS.sub(r"\1+\2", text.strip())
    try:
        parsed = datetime.fromisoformat(text)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise Refused(400, f"{name}: '{text[:40]}' is not an ISO 8601 date and time "
                           "(e.g. 2026-10-01T00:00:00+08:00)") from None


def window(start: Optional[datetime], end: Optional[datetime]) -> tuple[datetime, datetime]:
    """The filing span asked for: at most :data:`WINDOW_DAYS`; one end given, the span runs from it; none, the
    last :data:`WINDOW_DAYS` days."""
    span = timedelta(days=WINDOW_DAYS)
    if start is not None and end is not None:
        if end < start:
            raise Refused(400, "end_date: before start_date")
        if end - start > span:
            raise Refused(400, f"start_date..end_date: may not span more than {WINDOW_DAYS} days")
        return start, end
    if start is not None:
        return start, start + span
    end = end or datetime.now(timezone.utc).replace(tzinfo=None)
    return end - span, end


def listed(text: Optional[str], name: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(v.strip() for v in (text or "").split(",") if v.strip()))
    if len(values) > MAX_CODES or any(len(v) > 128 for v in values):
        raise Refused(400, f"{name}: at most {MAX_CODES} values of at most 128 characters each")
    return values


def closed_filter(text: Optional[str]) -> Optional[bool]:
    """``status``: open, closed, or both (comma-separated); None keeps every case."""
    wanted = set(listed(text, "status"))
    if wanted - {"open", "closed"}:
        raise Refused(400, f"status: expected open, closed or open,closed; got '{(text or '')[:40]}'")
    return None if len(wanted) != 1 else wanted == {"closed"}


def positive(text: Optional[str], name: str, default: int, most: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise Refused(400, f"{name}: expected a whole number from 1 to {most}; got '{text[:20]}'")
    return int(text)


def filters(params: dict[str, str], tz: ZoneInfo, page: int, size: int) -> FiledCases:
    """The store's filters for one page of requests.json (raises :class:`Refused` for a bad parameter); one row
    more than the page, to know whether there is a next one without counting them all."""
    ids = listed(params.get("service_request_id"), "service_request_id")
    if ids:  # GeoReport: request ids override every other filter
        return FiledCases(incident_ids=ids, limit=MAX_CODES)
    start, end = window(moment(params.get("start_date"), "start_date", tz), moment(params.get("end_date"),
                                                                                    "end_date", tz))
    return FiledCases(scenarios=listed(params.get("service_code"), "service_code"),
                      closed=closed_filter(params.get("status")), filed_from=start, filed_to=end,
                      offset=(page - 1) * size, limit=size + 1)


@router.get("/requests.{fmt}", response_model=list[Open311Request], responses=ERRORS,
            summary="GeoReport v2: cases as service requests, newest first; service_code, status, start_date, "
                    "end_date, service_request_id; page and page_size (≤ 1000) (public, JSON only)")
def requests(fmt: str, request: Request) -> JSONResponse:
    city, params = city_of(request), dict(request.query_params)
    try:
        check_format(fmt)
        page = positive(params.get("page"), "page", 1, 1_000_000)
        size = positive(params.get("page_size"), "page_size", MAX_PAGE_SIZE, MAX_PAGE_SIZE)
        wanted = filters(params, ZoneInfo(city.system.city.timezone), page, size)
    except Refused as problem:
        return refusal(problem)
    found = store_of(request).filed_cases(wanted)
    headers = {}
    if not wanted.incident_ids and len(found) > size:
        found = found[:size]
        headers["Link"] = f'<{request.url.include_query_params(page=page + 1)}>; rel="next"'
    return answer([service_request(city, case) for case in found], headers)


@router.get("/requests/{request_id}.{fmt}", response_model=list[Open311Request], responses=ERRORS,
            summary="GeoReport v2: one case as a list of one service request (public, JSON only)")
def one_request(request_id: str, fmt: str, request: Request) -> JSONResponse:
    try:
        check_format(fmt)
        found = store_of(request).filed_cases(FiledCases(incident_ids=(request_id,), limit=1))
        if not found:
            raise Refused(404, f"service_request_id: no request '{request_id[:160]}'")
    except Refused as problem:
        return refusal(problem)
    return answer([service_request(city_of(request), found[0])])

