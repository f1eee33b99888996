"""Alembic environment: migrates the connection the store hands over (never reads alembic.ini)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from tasks.store import Base

connection = context.config.attributes["connection"]
if connection.dialect.name == "postgresql":
    # two processes starting at once must not both create the tables
    connection.execute(text("SELECT pg_advisory_xact_lock(4711203)"))
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
