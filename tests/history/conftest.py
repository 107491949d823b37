"""Every history test runs on both databases: SQLite (the embedded default) and a real PostgreSQL server."""
from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def database_setting(request) -> str:
    """What ``history.database`` would say in nonsite.yaml: an in-memory SQLite, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return ":memory:"
    return request.getfixturevalue("new_postgres_database")()
