"""Everyone: log in and out, who am I, the demo accounts, liveness, and the lists the pages need."""
from __future__ import annotations

import asyncio
import math
from datetime import datetime

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from nonsite.config import City
from nonsite.passwords import verify_password
from web.api.deps import city_of, store_of
from web.api.schemas import DemoLogin, Health, LoginIn, LoginOut, Meta, Ok
from web.auth import Principal, find_login
from web.security import ANY_ROLE, COOKIE
from web.throttle import LoginThrottle
from web.views import REJECT_REASONS

router = APIRouter(prefix="/api", tags=["auth"])
log = structlog.get_logger("web.api.session")
LOGINS = Counter("nonsite_web_logins_total", "login attempts by outcome (ok, failed, throttled)", ["outcome"])
DEMO_PASSWORDS = {"operator": "ops-demo", "supervisor": "sup-demo", "officer": "off-demo"}


def _refuse_if_throttled(request: Request, username: str, address: str) -> None:
    throttle: LoginThrottle = request.app.state.login_throttle
    wait_s = throttle.begin(username, address)
    if wait_s > 0:
        retry_after = math.ceil(wait_s)
        LOGINS.labels("throttled").inc()
        log.warning("web.login.throttled", username=username[:64], address=address, retry_after_s=retry_after)
        raise HTTPException(429, f"too many failed logins for this user or address: try again in {retry_after} s",
                            headers={"Retry-After": str(retry_after)})


def _session(request: Request, who: Principal) -> JSONResponse:
    """The login answer: a new token in the body and in the session cookie."""
    tokens = request.app.state.tokens
    token = tokens.issue(who)
    expires = tokens.expires_at(token)
    response = JSONResponse({"token": token, "expires_at": datetime.fromtimestamp(expires).astimezone().isoformat(),
                             "role": who.role, "person_id": who.person_id, "name": who.name})
    response.set_cookie(COOKIE, token, max_age=int(tokens.ttl_s), httponly=True, samesite="strict", path="/")
    return response


@router.post("/login", response_model=LoginOut,
             summary="log in; returns a bearer token and sets the session cookie")
async def login(body: LoginIn, request: Request) -> JSONResponse:
    address = request.client.host if request.client else "unknown"
    _refuse_if_throttled(request, body.username, address)
    who = await asyncio.to_thread(find_login, city_of(request), body.username, body.password)
    if who is None:
        LOGINS.labels("failed").inc()
        log.info("web.login.failed", username=body.username[:64], address=address)
        raise HTTPException(401, "username or password is wrong")
    request.app.state.login_throttle.succeeded(body.username, address)
    LOGINS.labels("ok").inc()
    return _session(request, who)


@router.post("/logout", response_model=Ok, summary="end the session (the token stops working)")
def logout(request: Request, who: Principal = Depends(ANY_ROLE)) -> JSONResponse:
    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE)
    if token:
        request.app.state.tokens.revoke(token)
    response = JSONResponse({"ok": True})
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/me", response_model=Principal)
async def me(who: Principal = Depends(ANY_ROLE)) -> Principal:
    return who


def _demo_logins(city: City) -> list[dict]:
    """Accounts that still have the published demo password (so a real deployment shows none)."""
    people = [(o.credentials.username, "officer", o.credentials.password_hash) for o in city.officers if o.credentials]
    people += [(u.credentials.username, u.role, u.credentials.password_hash) for u in city.users]
    return [{"username": name, "password": DEMO_PASSWORDS[role], "role": role} for name, role, stored in people
            if verify_password(DEMO_PASSWORDS[role], stored)]


@router.get("/demo-logins", response_model=list[DemoLogin], response_model_exclude_unset=True,
            summary="demo accounts whose published demo password still works")
async def demo_logins(request: Request) -> list[dict]:
    if request.app.state.demo_logins is None:
        request.app.state.demo_logins = await asyncio.to_thread(_demo_logins, city_of(request))
    return request.app.state.demo_logins


@router.get("/health", response_model=Health, responses={503: {"model": Health}},
            summary="liveness: is the system of record being fed (no login needed)")
def health(request: Request) -> JSONResponse:
    bus = request.app.state.bus
    body = {"ok": bus.healthy, "reason": bus.health_reason, "records": bus.recorded,
            "incidents": store_of(request).count_cases(), "last_record_at": bus.last_message_at}
    return JSONResponse(body, status_code=200 if bus.healthy else 503)


def _meta(city: City) -> dict:
    return {"city": city.system.city.name, "city_zh": city.system.city.name_zh,
            "timezone": city.system.city.timezone,
            "scenarios": [{"id": s.id, "label_zh": s.label_zh, "label_en": s.label_en, "sla_minutes": s.sla_minutes}
                          for s in city.scenarios],
            "grids": [{"id": g.id, "name": g.name} for g in city.grids],
            "officers": [{"id": o.id, "name": o.name, "grid": o.grid} for o in city.officers],
            "reject_reasons": [{"code": k, "label": v} for k, v in REJECT_REASONS.items()],
            "min_sample_for_ranking": city.web.min_sample_for_ranking,
            "upload_max_mb": city.web.upload_max_mb, "upload_types": city.web.upload_types}


@router.get("/meta", response_model=Meta, response_model_exclude_unset=True,
            summary="scenarios, grids, officers, states and reject reasons for the pages")
async def meta(request: Request, who: Principal = Depends(ANY_ROLE)) -> dict:
    return _meta(city_of(request))
