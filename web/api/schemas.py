"""What the API takes and gives: request bodies (strict) and the JSON answers (as web/views.py and
web/reports.py build them).

A response model declares every field its view writes today, in the same order, so the OpenAPI schema
documents them; it also lets through a field a view adds later (``extra="allow"``) instead of dropping it,
and the routes answer with ``response_model_exclude_unset`` so a field the view leaves out stays out.
"""
from __future__ import annotations

import typing
from typing import Annotated, Any, Literal, Optional, Union

import msgspec
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from contract import Alert, CaseEvent, Record, Task

# a JSON number kept as the view wrote it (an int stays an int: no 30 -> 30.0 on the way out)
Number = Annotated[Union[int, float], WithJsonSchema({"type": "number"})]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# ------------------------------------------------------------------ requests
class LoginIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class ActionIn(Strict):
    action: Literal["accept", "arrive", "resolve", "reject"]
    note: str = Field(default="", max_length=2000)
    reason: str = Field(default="", max_length=64, description="for reject: one code of GET /api/meta reject_reasons")
    evidence: list[str] = Field(default=[], max_length=10, description="sha256 of photos sent to POST /api/uploads")


class ReassignIn(Strict):
    target_officer: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=500)


class ConfirmIn(Strict):
    reason: str = Field(default="", max_length=500)


class DismissIn(Strict):
    reason: str = Field(min_length=1, max_length=500, pattern=r"\S", description="why it is no violation")


# ------------------------------------------------------------------ session
class Outcome(BaseModel):
    feedback_id: str
    action: str
    status: Literal["applied", "refused", "pending"]
    reason: str = ""
    to_state: Optional[str] = None


class LoginOut(Out):
    token: str
    expires_at: str
    role: str
    person_id: str
    name: str


class Ok(Out):
    ok: bool


class DemoLogin(Out):
    username: str
    password: str
    role: str


class Health(Out):
    ok: bool
    reason: Optional[str] = None
    records: int
    incidents: int
    last_record_at: Optional[float] = None


class ScenarioMeta(Out):
    id: str
    label_zh: str
    label_en: str
    sla_minutes: int


class GridMeta(Out):
    id: str
    name: str


class OfficerMeta(Out):
    id: str
    name: str
    grid: str


class RejectReason(Out):
    code: str
    label: str


class Meta(Out):
    city: str
    city_zh: str
    timezone: str
    scenarios: list[ScenarioMeta]
    grids: list[GridMeta]
    officers: list[OfficerMeta]
    reject_reasons: list[RejectReason]
    min_sample_for_ranking: int
    upload_max_mb: float
    upload_types: list[str]


# ------------------------------------------------------------------ records as the contract writes them
def contract_model(record: type[Record]) -> type[Out]:
    """The response model of a contract record: its fields and defaults, read from the record itself (the
    contract's bounds are checked where records are decoded, so only the plain types are kept here)."""
    fields = {}
    for field in msgspec.structs.fields(record):
        kind = _plain_type(field.type)
        if field.default is not msgspec.NODEFAULT:
            fields[field.name] = (kind, field.default)
        elif field.default_factory is not msgspec.NODEFAULT:
            fields[field.name] = (kind, Field(default_factory=field.default_factory))
        else:
            fields[field.name] = (kind, ...)
    return create_model(f"{record.__name__}Out", __base__=Out, **fields)


def _plain_type(hint: Any) -> Any:
    """``hint`` without its msgspec constraints (``Annotated[str, Meta(...)]`` -> ``str``), inside too."""
    if typing.get_origin(hint) is Annotated:
        return _plain_type(typing.get_args(hint)[0])
    args = typing.get_args(hint)
    if not args or typing.get_origin(hint) is Literal:
        return hint
    if isinstance(typing.get_origin(hint), type) and issubclass(typing.get_origin(hint), list):
        return list[_plain_type(args[0])]
    return Optional[_plain_type(next(a for a in args if a is not type(None)))] if type(None) in args else hint


AlertOut = contract_model(Alert)
CaseEventOut = contract_model(CaseEvent)
TaskOut = contract_model(Task)


class StoredEvidence(Out):
    """POST /api/uploads: the stored photo (contract Evidence), where to fetch it and its size in bytes."""

    kind: str
    sha256: str
    uri: str
    content_type: str
    masked: dict[str, str] = Field(default_factory=dict, description="masked copies: variant -> sha256 (none for "
                                                                       "an officer's photo)")
    schema_version: int
    url: str
    size: int


# ------------------------------------------------------------------ the wall and the officer app
class EvidenceLink(Out):
    kind: str
    sha256: str
    url: str


class Photo(Out):
    sha256: str
    url: str


class IncidentView(Out):
    """One case as the wall shows it; a task view of a task whose incident is not known yet has only
    ``incident_id`` and ``state`` of these."""

    incident_id: str
    scenario: str = ""
    scenario_zh: str = ""
    scenario_en: str = ""
    plate: Optional[str] = Field(None, description="the vehicle's plate once read (personal data), else null")
    camera_id: str = ""
    camera_name: str = ""
    address: str = ""
    lat: Optional[Number] = None
    lon: Optional[Number] = None
    zone_id: Optional[str] = None
    grid_id: str = ""
    grid_name: str = ""
    state: str
    first_seen: str = ""
    last_seen: str = ""
    updated_at: str = ""
    detections: int = 0
    priority: int = 3
    officer_id: Optional[str] = None
    officer_name: str = ""
    task_id: Optional[str] = None
    task_status: Optional[str] = None
    deadline: Optional[str] = None
    escalated: bool = False
    overdue: bool = False
    open: bool = True
    first_offence: bool = False
    recurrence_of: Optional[str] = None
    reopen_count: int = 0
    snapshot: Optional[str] = None
    evidence: list[EvidenceLink] = []


class CasePage(Out):
    """GET /api/cases: one page of the cases the filters keep, newest first, and how many match in all."""

    page: int
    per_page: int
    total: int
    cases: list[IncidentView]


class IncidentDetail(IncidentView):
    tasks: list[TaskOut]
    history: list[CaseEventOut]


class TaskView(IncidentView):
    assigned_at: str
    accept_by: str
    attempt: int
    note: str
    active: bool


class TaskDetail(TaskView):
    history: list[CaseEventOut]
    photos: list[Photo]


class Camera(Out):
    camera_id: str
    name: str
    address: str
    grid_id: str
    enabled: bool
    state: str
    observed_at: Optional[str] = None
    reason: str


# ------------------------------------------------------------------ reports
class Figures(Out):
    group: str
    label: str
    filed: int
    due: int
    closed: int
    on_time: int
    reworked: int
    false_alarms: int
    closure_rate: Optional[float] = None
    on_time_rate: Optional[float] = None
    rework_rate: Optional[float] = None
    false_alarm_rate: Optional[float] = None
    mean_minutes_to_close: Optional[float] = None
    dismissed_in_review: int = 0
    awaiting_review: int = 0


class Rank(Out):
    rank: int


class RankedFigures(Figures, Rank):
    """A ranked group: ``rank`` first, then its figures."""


class Span(Out):
    first: str = Field(alias="from")
    last: str = Field(alias="to")


class Summary(Span):
    by: str
    rows: list[Figures]
    total: Figures


class Ranking(Span):
    by: str
    min_sample: int
    ranked: list[RankedFigures]
    unranked: list[Figures]


class Day(Out):
    day: str
    filed: int
    due: int
    closed: int
    on_time: int
    closure_rate: Optional[float] = None
    dismissed_in_review: int = 0


class RepeatOffender(Out):
    plate_key: str = Field(description="HMAC of the plate (nonsite.privacy.plate_key), never the plate")
    incidents: int
    scenarios: list[str]
    first_seen: str
    last_seen: str


class RepeatOffenders(Span):
    min_incidents: int
    rows: list[RepeatOffender]


class Monthly(Out):
    month: str
    first: str = Field(alias="from")
    last: str = Field(alias="to")
    city: str
    city_zh: str
    by_scenario: list[Figures]
    by_grid: list[Figures]
    total: Figures


# ------------------------------------------------------------------ Open311 GeoReport v2 (web/api/open311.py)
class Open311Service(Out):
    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: str
    keywords: str
    group: str


class Open311Request(Out):
    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str
    service_name: str
    service_code: str
    description: str
    agency_responsible: str
    service_notice: Optional[str] = None
    requested_datetime: str
    updated_datetime: str
    expected_datetime: Optional[str] = None
    address: str
    address_id: Optional[str] = None
    zipcode: Optional[str] = None
    lat: Optional[float] = None
    long: Optional[float] = None
    media_url: Optional[str] = None


class Open311Error(BaseModel):
    code: int
    description: str
