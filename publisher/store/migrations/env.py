"""Alembic environment: run with the engine the application passes in."""

from __future__ import annotations

from alembic import context

from publisher.store.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    context.run_migrations()
