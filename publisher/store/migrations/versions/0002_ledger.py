"""The tamper-evident log: its tables and the database-enforced append-only rules.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import context, op

from publisher.ledger.log import grant_app_role_ddl, install

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    install(conn)
    role = context.config.attributes.get("app_role", "")
    if role and conn.dialect.name == "postgresql":
        for statement in grant_app_role_ddl(role):
            conn.exec_driver_sql(statement)


def downgrade() -> None:
    raise RuntimeError("The log is append-only: it is never dropped by a migration")
