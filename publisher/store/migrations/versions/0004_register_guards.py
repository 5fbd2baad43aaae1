"""Guards on the register: consent events, certificates and revocations are insert-only, and
a never-publish flag cannot be lifted by editing a row. The post keeps the salt of its text
commitment (the log holds only the salted hash) and why it was cancelled (kept out of the log).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INSERT_ONLY = ("consent_events", "approver_certificates", "revocations")


def _sqlite() -> list[str]:
    out = []
    for table in INSERT_ONLY:
        for verb in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is insert-only: {verb} refused'); END"
            )
    out.append(
        "CREATE TRIGGER IF NOT EXISTS subjects_never_publish_stays BEFORE UPDATE OF never_publish ON subjects "
        "WHEN OLD.never_publish AND NOT NEW.never_publish "
        "BEGIN SELECT RAISE(ABORT, 'a never-publish flag cannot be lifted'); END"
    )
    return out


def _postgresql() -> list[str]:
    out = [
        "CREATE OR REPLACE FUNCTION publisher_insert_only() RETURNS trigger LANGUAGE plpgsql AS $f$ "
        "BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is insert-only: ' || TG_OP || ' refused'; END $f$",
        "CREATE OR REPLACE FUNCTION publisher_never_publish_stays() RETURNS trigger LANGUAGE plpgsql AS $f$ "
        "BEGIN IF OLD.never_publish AND NOT NEW.never_publish THEN "
        "RAISE EXCEPTION 'a never-publish flag cannot be lifted'; END IF; RETURN NEW; END $f$",
        "CREATE OR REPLACE TRIGGER subjects_never_publish_stays BEFORE UPDATE ON subjects "
        "FOR EACH ROW EXECUTE FUNCTION publisher_never_publish_stays()",
        "ALTER TABLE subjects ENABLE ALWAYS TRIGGER subjects_never_publish_stays",
    ]
    for table in INSERT_ONLY:
        out += [
            f"CREATE OR REPLACE TRIGGER {table}_insert_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION publisher_insert_only()",
            f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION publisher_insert_only()",
            f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_insert_only",
            f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_truncate",
        ]
    return out


def upgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.add_column(sa.Column("text_salt", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("cancel_reason", sa.Text(), nullable=False, server_default=""))
    conn = op.get_bind()
    for statement in _sqlite() if conn.dialect.name == "sqlite" else _postgresql():
        conn.exec_driver_sql(statement)


def downgrade() -> None:
    raise RuntimeError("The register's guards are not removed by a migration")
