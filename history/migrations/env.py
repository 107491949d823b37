"""Alembic's entry point: migrate the connection :func:`history.database.migrate` hands over."""
from __future__ import annotations

from alembic import context

from history.schema import METADATA

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=METADATA, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
