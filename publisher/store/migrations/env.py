"""Alembic environment: run with the engine the application passes in."""

from __future__ import annotations

from alembic import context

from publisher.store.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        # the log's tables are made by migration 0002 from publisher.ledger; autogenerate leaves them be
        include_object=lambda obj, name, kind, reflected, compare_to: kind != "table" or name in Base.metadata.tables,
    )
    context.run_migrations()
