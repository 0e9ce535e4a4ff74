"""Alembic environment: runs on the connection handed in by ``store.migrate.upgrade``."""

from __future__ import annotations

from alembic import context

from infragent.store import notify_schema, runbook_schema  # noqa: F401  (their tables join the metadata)
from infragent.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
