"""The audit log of configuration changes made from the web: who changed which entry of which file, when,
and what it held before and after (the zone editor writes one row per saved camera).

The file itself is the configuration the detector reads; this table is the record of who changed it.

Example::

    >>> from history.database import open_database
    >>> engine = open_database(":memory:")
    >>> record_change(engine, ConfigChange(datetime(2026, 12, 2, 7), "U001", "operator", "cameras.yaml",
    ...                                    "cam-02", "zones", {"zones": []}, {"zones": [{"id": "z-1"}]}))
    >>> [(c.person_id, c.target, c.after["zones"][0]["id"]) for c in changes_of(engine, "cam-02")]
    [('U001', 'cam-02', 'z-1')]
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import Engine, select

from history import schema

CHANGES_SHOWN = 50


@dataclass(frozen=True)
class ConfigChange:
    at: datetime  # naive UTC, as the tables hold times
    person_id: str
    role: str
    file: str  # the configuration file, e.g. cameras.yaml
    target: str  # its entry: the camera id
    what: str  # the part of the entry changed: zones (its zones and privacy zones)
    before: dict[str, Any]
    after: dict[str, Any]


def record_change(engine: Engine, change: ConfigChange) -> None:
    with engine.begin() as connection:
        connection.execute(schema.config_changes.insert().values(**asdict(change)))


def changes_of(engine: Engine, target: Optional[str] = None, limit: int = CHANGES_SHOWN) -> list[ConfigChange]:
    """The latest changes, of one entry when ``target`` is given, newest first."""
    table = schema.config_changes.c
    query = select(table.at, table.person_id, table.role, table.file, table.target, table.what, table.before,
                   table.after)
    if target is not None:
        query = query.where(table.target == target)
    with engine.connect() as connection:
        rows = connection.execute(query.order_by(table.at.desc(), table.id.desc()).limit(limit))
        return [ConfigChange(**{**row._asdict(), "before": _as_dict(row.before), "after": _as_dict(row.after)})
                for row in rows]


def _as_dict(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, (str, bytes)) else value
