"""Deliveries by account, status and publish time: the posting budget (posts in the last 24 h
on an account) is asked for every delivery, and without this index it read every live
delivery of every account.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_account_status_published", "deliveries", ["account", "status", "published_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_account_status_published", table_name="deliveries")
