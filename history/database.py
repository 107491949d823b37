"""Open the system of record: SQLite (a file, the embedded default) or PostgreSQL (a city deployment).

:func:`open_database` takes what ``history.database`` says in ``nonsite.yaml``: a path (SQLite) or a
SQLAlchemy URL (``postgresql+psycopg://user:pass@host/db``), brings the schema to the newest
migration (Alembic, ``history/migrations``) and returns the engine.

Example::

    >>> engine = open_database(":memory:")
    >>> sorted(inspect(engine).get_table_names())[:2]
    ['access_log', 'alembic_version']
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

# set before alembic is imported: it logs its plugins at INFO then, and each migration step later, noise in
# every command (a failing database would no longer be the one line a command prints)
logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy import Engine, create_engine, event, inspect  # noqa: E402,F401  (inspect: the example)
from sqlalchemy.pool import StaticPool  # noqa: E402

MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseError(RuntimeError):
    """The database cannot be opened or migrated; ``str()`` is the one line for the user."""


def database_url(setting: str, base: Path | None = None) -> str:
    """A SQLAlchemy URL from the setting: URLs as they are, a path as a SQLite file (relative to ``base``)."""
    if "://" in setting:
        return setting
    if setting == ":memory:":
        return "sqlite://"
    path = Path(setting)
    if base is not None and not path.is_absolute():
        path = base / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def open_database(setting: str, base: Path | None = None, migrate_schema: bool = True) -> Engine:
    """The engine of the database the setting names, its schema migrated to the newest version."""
    url = database_url(setting, base)
    engine = _engine(url)
    if migrate_schema:
        try:
            migrate(engine)
        except Exception as exc:  # a refused login, a missing server, a read-only file: one line for the user
            engine.dispose()
            raise DatabaseError(f"history.database {_safe(url)}: {type(exc).__name__}: {exc}".splitlines()[0]) \
                from None
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (nothing to do when it is there already)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if url == "sqlite://":  # one in-memory database shared by every connection (tests, examples)
        options["poolclass"] = StaticPool
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL: readers (the web's requests) never wait for the writer (the recorder) and vice versa
    cursor = connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _safe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
