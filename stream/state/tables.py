"""The engine's state: one view per thing it holds, all in one journal table (see :mod:`stream.state.journal`).

Example::

    >>> tables = Tables.in_memory()
    >>> tables.camera_states["cam-01"] = "online"; tables.journal.commit()
    1
    >>> tables.camera_states.get("cam-01")
    'online'
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping, MutableMapping, Optional

from stream.state.journal import Journal, View


@dataclass
class Tables:
    """The engine's state, one view per thing it holds (all values plain JSON), in one journal table."""

    cases: View  # incident id -> case (incident, case file, presence, task)
    open_cases: View  # district -> ids of open cases
    site_cases: View  # scenario|camera|zone -> id of the last case filed there
    violation_cases: View  # detector violation id -> incident id
    officer_open_tasks: View  # officer id -> number of open tasks
    grid_last_assigned: View  # grid id -> officer who got the last task (round robin)
    grid_queues: View  # grid id -> ids of cases waiting for an officer
    offence_history: View  # site:/plate:/shop: key -> [[epoch, incident id]]
    camera_states: View  # camera id -> online | offline
    retired_cases: View  # district|hour (UTC, 2026-11-21T08) -> ids of cases closed or rejected then
    retired_hours: View  # district -> the hours of retired_cases, oldest first
    source_offsets: View  # district|topic:partition -> last applied offset; district|clock -> last tick
    journal: Journal = field(repr=False, default=None)  # type: ignore[assignment]

    @classmethod
    def over(cls, store: MutableMapping[str, Any], reader: Optional[Mapping[str, Any]] = None) -> "Tables":
        """Views over one mapping: a Faust table in the worker, a dict in unit tests (``reader``: see Journal)."""
        journal = Journal(store, reader)
        return cls(**{name: View(journal, name) for name in cls.names()}, journal=journal)

    @classmethod
    def in_memory(cls) -> "Tables":
        return cls.over({})

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "journal"]


