"""The log's stored subtree hashes (``log_tiles``, see publisher.ledger.tiles): the table and
its append-only rules for databases made before it, and the tiles of the entries already
logged, computed in one streaming pass over their leaves. A database made by 0002 with this
code already has the table, and an empty log has no tiles: then only the grants are run.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from publisher.ledger import tiles
from publisher.ledger.log import grant_app_role_ddl, install

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    if not sa.inspect(conn).has_table("log_tiles"):
        install(conn)  # idempotent: creates log_tiles and adds its triggers beside the others
    tiles.backfill(conn)
    role = context.config.attributes.get("app_role", "")
    if role and conn.dialect.name == "postgresql":
        for statement in grant_app_role_ddl(role):
            conn.exec_driver_sql(statement)


def downgrade() -> None:
    raise RuntimeError("The log's tables are append-only: they are never dropped by a migration")
