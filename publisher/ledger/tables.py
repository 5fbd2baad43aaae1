"""The ledger's tables (SQLAlchemy Core), on their own MetaData.

``log_entries``, ``log_checkpoints`` and ``log_tiles`` are append-only: the rules are database
triggers, see ``publisher.ledger.log.append_only_ddl``. ``subject_keys`` is deliberately mutable: it
holds the per-subject keys whose deletion crypto-shreds a subject's sealed fields.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, MetaData, Table, Text, func, select

metadata = MetaData()

# SQLite: INTEGER PRIMARY KEY (the rowid alias, so max(seq) is a B-tree probe); PostgreSQL: bigint.
_Seq = BigInteger().with_variant(Integer(), "sqlite")

log_entries = Table(
    "log_entries",
    metadata,
    Column("seq", _Seq, primary_key=True, autoincrement=False),
    Column("kind", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),  # RFC 8785 bytes; carries seq, kind and ts too
    Column("leaf_hash", LargeBinary(32), nullable=False),  # SHA-256(0x00 || body)
    Column("created_at", Text, nullable=False),  # RFC 3339 UTC, equal to the body's "ts"
)

# The log is dense (seq 0..n-1, enforced by a trigger): its size is max(seq) + 1, one step down
# the primary key, where count(*) reads every entry.
LOG_SIZE = select(func.coalesce(func.max(log_entries.c.seq) + 1, 0))

log_checkpoints = Table(
    "log_checkpoints",
    metadata,
    Column("size", _Seq, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),  # the full signed note, C2SP tlog-checkpoint
    Column("created_at", Text, nullable=False),
)

# Stored subtree hashes (see publisher.ledger.tiles): tile ``seq`` k is the RFC 9162 hash of
# leaves [256k, 256k + 256), stored when the log reaches 256(k + 1) entries. Derived from
# log_entries, a cache that `verify` checks and never trusts; dense ``seq`` like the log.
log_tiles = Table(
    "log_tiles",
    metadata,
    Column("seq", _Seq, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

subject_keys = Table(
    "subject_keys",
    metadata,
    Column("ref", Text, primary_key=True),  # random pseudonym "subj:<32 hex>"
    Column("subject_id", Text, nullable=False, unique=True),
    Column("key", LargeBinary(32), nullable=False),  # ChaCha20-Poly1305 key; delete = erase
    Column("created_at", Text, nullable=False),
)

# Which entries mention which pseudonym: a derived, rebuildable index (not part of the log's
# evidence) so a subject access request does not read a million entries.
log_subject_index = Table(
    "log_subject_index",
    metadata,
    Column("ref", Text, nullable=False),
    Column("seq", _Seq, nullable=False),
    Index("ix_log_subject_index_ref", "ref", "seq", unique=True),
)
