"""Supervisors (and operators): closure summary as JSON and CSV, the daily figures and their chart, the
ranking and the monthly report.  The figures are counted by :mod:`history.statistics` (the same code as
``nonsite report``) and presented by :mod:`web.reports`."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal, Optional
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, Response

from nonsite.config import City
from history import statistics
from history.statistics import Period
from web import reports
from web.api.deps import city_of, store_of
from web.api.schemas import Day, Monthly, Ranking, RepeatOffenders, Summary
from web.auth import Principal
from web.security import REPORT_ROLES

router = APIRouter(prefix="/api/reports", tags=["reports"])
MAX_RANGE_DAYS = 366
FROM = Query(None, alias="from", description="first day YYYY-MM-DD, local time (default: 29 days before to)")
TO = Query(None, alias="to", description="last day YYYY-MM-DD (default: today)")
BY = Query("scenario", description="scenario, grid, officer or camera")
GroupBy = Literal["scenario", "grid", "officer", "camera"]


def _zone(city: City) -> ZoneInfo:
    return ZoneInfo(city.system.city.timezone)


def _period(request: Request, first: Optional[date], last: Optional[date]) -> Period:
    """The days asked for (default: the 30 days up to today, local time), at most MAX_RANGE_DAYS."""
    tz = _zone(city_of(request))
    last = last or datetime.now(tz).date()
    try:
        first = first or last - timedelta(days=29)
    except OverflowError:
        raise HTTPException(422, f"to: {last} leaves no room for a 30-day range before it") from None
    if last < first:
        raise HTTPException(422, f"to: {last} is before from: {first}")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise HTTPException(422, f"to: the range may cover at most {MAX_RANGE_DAYS} days")
    return Period(first, last)


def _span(period: Period) -> dict:
    return {"from": period.first.isoformat(), "to": period.last.isoformat()}


def _engine(request: Request):
    return store_of(request).engine


def _summary(request: Request, first: Optional[date], last: Optional[date], by: str) -> tuple:
    """(period, rows, total) of the closure summary: what the JSON and the CSV report both show."""
    period = _period(request, first, last)
    rows, total = reports.summarise_for(city_of(request), _engine(request), period, by)
    return period, rows, total


@router.get("/summary", response_model=Summary, response_model_exclude_unset=True,
            summary="closure, on-time, rework, false-alarm rates by group")
def summary(request: Request, first: Optional[date] = FROM, last: Optional[date] = TO, by: GroupBy = BY,
                  who: Principal = Depends(REPORT_ROLES)) -> dict:
    period, rows, total = _summary(request, first, last, by)
    return {**_span(period), "by": by, "rows": [r.as_dict() for r in rows], "total": total.as_dict()}


@router.get("/summary.csv", summary="the same summary as CSV")
def summary_csv(request: Request, first: Optional[date] = FROM, last: Optional[date] = TO, by: GroupBy = BY,
                      who: Principal = Depends(REPORT_ROLES)) -> PlainTextResponse:
    period, rows, total = _summary(request, first, last, by)
    name = f"nonsite-{by}-{period.first}-{period.last}.csv"
    return PlainTextResponse("\ufeff" + reports.to_csv(rows, total), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/daily", response_model=list[Day], response_model_exclude_unset=True,
            summary="per day: filed, closed, closure rate")
def daily(request: Request, first: Optional[date] = FROM, last: Optional[date] = TO,
          who: Principal = Depends(REPORT_ROLES)) -> list[dict]:
    return statistics.daily(_engine(request), _period(request, first, last))


@router.get("/trend.svg", summary="the daily trend as an SVG chart")
def trend(request: Request, first: Optional[date] = FROM, last: Optional[date] = TO,
          who: Principal = Depends(REPORT_ROLES)) -> Response:
    days = statistics.daily(_engine(request), _period(request, first, last))
    return Response(reports.trend_svg(days), media_type="image/svg+xml")


@router.get("/ranking", response_model=Ranking, response_model_exclude_unset=True,
            summary="ranking; groups under the minimum sample are not ranked")
def ranking(request: Request, first: Optional[date] = FROM, last: Optional[date] = TO,
                  by: Literal["officer", "grid", "scenario", "camera"] = Query("officer"),
                  min_sample: Optional[int] = Query(None, ge=1, le=100000),
                  who: Principal = Depends(REPORT_ROLES)) -> dict:
    city, period = city_of(request), _period(request, first, last)
    rows, _ = reports.summarise_for(city, _engine(request), period, by)
    needed = min_sample or city.web.min_sample_for_ranking
    return {**_span(period), "by": by, **reports.ranking(rows, needed).as_dict()}


@router.get("/repeat-offenders", response_model=RepeatOffenders, response_model_exclude_unset=True,
            summary="plates (by their key, never the text) with at least min_incidents cases in the period")
def repeat_offenders(request: Request, first: Optional[date] = FROM, last: Optional[date] = TO,
                           min_incidents: int = Query(2, ge=2, le=1000),
                           who: Principal = Depends(REPORT_ROLES)) -> dict:
    period = _period(request, first, last)
    rows = statistics.repeat_offenders(_engine(request), period, min_incidents)
    return {**_span(period), "min_incidents": min_incidents, "rows": [r.as_dict() for r in rows]}


@router.get("/monthly", response_model=Monthly, response_model_exclude_unset=True,
            summary="the monthly report: counts by scenario, rates")
def monthly(request: Request, month: str = Query(..., pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                                                       description="YYYY-MM"),
                  who: Principal = Depends(REPORT_ROLES)) -> dict:
    city = city_of(request)
    try:
        period = reports.month_period(month)
    except (ValueError, OverflowError) as exc:
        raise HTTPException(422, f"month: {exc}") from None
    rows, total = reports.summarise_for(city, _engine(request), period, "scenario")
    grids, _ = reports.summarise_for(city, _engine(request), period, "grid")
    return {"month": month, **_span(period), "city": city.system.city.name, "city_zh": city.system.city.name_zh,
            "by_scenario": [r.as_dict() for r in rows], "by_grid": [g.as_dict() for g in grids],
            "total": total.as_dict()}
