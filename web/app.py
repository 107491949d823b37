"""The ASGI application: JSON API (OpenAPI at /openapi.json, docs at /docs), live events, pages.

Example::

    app = create_app(load_city("configs"))      # uvicorn.run(app) — or `nonsite web`
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Optional

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from history.database import open_database
from history.queries import CaseStore
from history.writer import HistoryWriter
from nonsite.config import City
from nonsite.evidence import EvidenceStore
from web.api import access, cases, export, files, holds, officer, open311, reports, session, spots, wall, zones
from web.auth import TokenIssuer
from web.bus import Bus
from web.middleware import SECURITY_HEADERS, SecurityMiddleware
from web.spot_labels import spot_labeller
from web.throttle import LoginThrottle

log = structlog.get_logger("web.app")
STATIC = Path(__file__).with_name("static")
PAGES = {"/": "index.html", "/login": "login.html", "/wall": "wall.html", "/officer": "officer.html",
         "/reports": "reports.html", "/reports/monthly": "monthly.html", "/docs": "docs.html",
         "/zones": "zones.html"}
OUTCOME_WAIT_S = 5.0


def create_app(city: City, outcome_wait_s: float = OUTCOME_WAIT_S, start_bus: bool = True) -> FastAPI:
    """The app for one city; ``start_bus=False`` leaves Kafka out (unit tests of pure routes)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.bus = Bus(city, app.state.store, history_writer(city, app.state.store))
        if start_bus:
            await app.state.bus.start()
        try:
            yield
        finally:
            if start_bus:
                await app.state.bus.stop()
            app.state.store.engine.dispose()

    app = FastAPI(title="nonsite operator surfaces 非现场执法",
                  description="Live alert wall (指挥中心), officer tasks (执法队员) and closure reports (督查). "
                              "Log in with POST /api/login, then send `Authorization: Bearer <token>` "
                              "(pages use the session cookie).",
                  version="1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.city = city
    app.state.store = CaseStore(open_database(city.system.history.database, city.root.parent))
    app.state.tokens = TokenIssuer.from_env(city.web.token_ttl_minutes * 60, app.state.store)
    app.state.login_throttle = LoginThrottle()
    app.state.evidence = EvidenceStore(city.resolve_path(city.detector.evidence_dir))
    app.state.demo_logins = None  # computed on first use
    app.state.sent = {}  # feedback id -> SentFeedback, to answer GET /api/feedback/{id}
    app.state.outcome_wait_s = outcome_wait_s
    _install_error_handlers(app)
    app.add_middleware(SecurityMiddleware)
    app.include_router(session.router)
    app.include_router(wall.router)
    app.include_router(cases.router)
    app.include_router(officer.router)
    app.include_router(files.router)
    app.include_router(reports.router)
    app.include_router(zones.router)
    app.include_router(export.router)
    app.include_router(open311.router)
    app.include_router(access.router)
    app.include_router(holds.router)
    app.include_router(spots.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for path, page in PAGES.items():
        app.add_api_route(path, _page(page), methods=["GET"], include_in_schema=False)
    app.add_api_route("/metrics", _metrics, methods=["GET"], include_in_schema=False)
    return app


def history_writer(city: City, store: CaseStore) -> HistoryWriter:
    """The writer that records the topics for this city (its time zone, its scenarios' deadlines)."""
    def sla_minutes(scenario_id: str) -> Optional[float]:
        scenario = city.scenario(scenario_id)
        return scenario.sla_minutes if scenario else None
    labeller = spot_labeller(city, EvidenceStore(city.resolve_path(city.detector.evidence_dir)),
                             store.engine.dialect.name)  # each decision about a case: a labelled crop of its spot
    return HistoryWriter(store.engine, city.system.city.timezone, city.kafka.topics.feedback, consumer="web",
                         sla_minutes=sla_minutes, labeller=labeller)


def _page(name: str):
    async def serve() -> FileResponse:
        return FileResponse(STATIC / name, media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})
    return serve


async def _metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def field_message(error: dict[str, Any]) -> str:
    """``body.target_officer: Field required`` — the field path first, as every 4xx answer does."""
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body" or len(error["loc"]) == 1)
    if error.get("type") == "json_invalid":
        return f"body: not valid JSON ({error.get('ctx', {}).get('error', 'parse error')})"
    return f"{location or 'body'}: {error.get('msg', 'invalid')}"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        return JSONResponse({"error": field_message(errors[0]) if errors else "invalid request",
                             "errors": [field_message(e) for e in errors]}, status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        """A bug: one line for the caller (no traceback), the details in the log; the security headers are
        added here because this answer is sent from outside the middleware."""
        log.error("web.request_failed", method=request.method, path=request.url.path,
                  error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        return JSONResponse({"error": "internal error (logged)"}, status_code=500, headers=SECURITY_HEADERS)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 401 and request.method == "GET" and "text/html" in request.headers.get("accept", "") \
                and not request.url.path.startswith("/api/"):
            return RedirectResponse("/login")
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))
