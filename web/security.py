"""Who is calling, and may they: bearer token or the session cookie, then a role check.

Anonymous -> 401, wrong role -> 403; pages and the API share the same token.
"""
from __future__ import annotations

from typing import Callable, Optional

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from web.auth import Principal

COOKIE = "nonsite_token"
bearer_scheme = HTTPBearer(auto_error=False, description="token from POST /api/login")
cookie_scheme = APIKeyCookie(name=COOKIE, auto_error=False, description="set by POST /api/login")


def token_of(request: Request, bearer: Optional[HTTPAuthorizationCredentials], cookie: Optional[str]) -> Optional[str]:
    if bearer is not None and bearer.credentials:
        return bearer.credentials
    return cookie or None


def current(request: Request, bearer: Optional[HTTPAuthorizationCredentials] = Depends(bearer_scheme),
            cookie: Optional[str] = Depends(cookie_scheme)) -> Optional[Principal]:
    token = token_of(request, bearer, cookie)
    return request.app.state.tokens.check(token) if token else None


def require(*roles: str) -> Callable[..., Principal]:
    """A dependency that returns the caller or refuses: 401 without a valid token, 403 for another role."""

    def dependency(who: Optional[Principal] = Depends(current)) -> Principal:
        if who is None:
            raise HTTPException(401, "authentication required: log in at POST /api/login",
                                headers={"WWW-Authenticate": "Bearer"})
        if who.role not in roles:
            raise HTTPException(403, f"role '{who.role}' may not do this (needs {' or '.join(roles)})")
        return who

    dependency.__name__ = f"require_{'_'.join(roles)}"
    return dependency


ANY_ROLE = require("operator", "officer", "supervisor")
LIVE_ROLES = require("operator", "supervisor")
OPERATOR = require("operator")
OFFICER = require("officer")
REPORT_ROLES = require("supervisor", "operator")
