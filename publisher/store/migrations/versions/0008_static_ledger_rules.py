"""Cheaper writes on PostgreSQL: the log's insert rules in static SQL (planned once per session,
not at every insert; see publisher.ledger.log) and no separate index on deliveries.post_id,
which the unique (post_id, account) index already serves, so every status change of a delivery
maintains one index fewer. SQLite's insert rules were static already. The index goes first: the
daemon locks a delivery before the log, so this migration takes its locks in that order too.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

from publisher.ledger.log import install

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_deliveries_post_id", table_name="deliveries")
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        install(conn)  # idempotent: CREATE OR REPLACE of the rules' functions and triggers


def downgrade() -> None:
    op.create_index("ix_deliveries_post_id", "deliveries", ["post_id"])
