"""The append-only, tamper-evident log in the project's database (SQLAlchemy 2 Core).

Every entry is an RFC 8785 body that carries its own ``seq``, ``kind``, ``ts`` and schema
version ``v``; the leaf hash is SHA-256(0x00 || body) and the log is an RFC 9162 Merkle tree
over the leaves in ``seq`` order. Signed C2SP checkpoints commit to the tree head; ``verify``
re-derives everything from the bodies and names the first bad sequence number.

Append-only is enforced by database triggers (``append_only_ddl``) and by granting the
runtime role only INSERT and SELECT (``grant_app_role_ddl``). Personal data never enters a
body in clear: subjects appear as random pseudonyms and personal fields are sealed under a
per-subject key held in the mutable ``subject_keys`` table; deleting that key (``erase``)
crypto-shreds them while every leaf, root and proof stays valid.

``log_tiles`` keeps the hash of every 256 leaves (``publisher.ledger.tiles``) so a fresh process
need not read the whole log. Tiles are a derived cache, never evidence: checkpoints are still
signed only after a consistency proof against the last signed root, ``verify`` re-derives the
log from the bodies and checks every tile, and ``prove_many`` checks each proof it makes.

This module is longer than the house ~400 lines because it is the one repository of the
ledger: the DDL, the Ledger and the subject-key helpers share the same tables and rules.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from publisher.errors import InvalidInput, LedgerError, LogIntegrityError
from publisher.ledger import canonical, merkle, rederive, tiles
from publisher.ledger.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    TlogProof,
    open_checkpoint,
    sign_checkpoint,
    verify_tlog_proof,
)
from publisher.ledger.tables import LOG_SIZE, log_checkpoints, log_entries, metadata, subject_keys
from publisher.store import db

# Entry kinds.
POST_PUBLISHED: Final = "post_published"
PUBLISH_BLOCKED: Final = "publish_blocked"
TAKEDOWN_REQUESTED: Final = "takedown_requested"
TAKEN_DOWN: Final = "taken_down"
CONSENT_GRANTED: Final = "consent_granted"
CONSENT_WITHDRAWN: Final = "consent_withdrawn"
APPROVAL_RECORDED: Final = "approval_recorded"
APPROVER_CERTIFIED: Final = "approver_certified"
APPROVER_REVOKED: Final = "approver_revoked"
SUBJECT_ERASED: Final = "subject_erased"
SAR_ANSWERED: Final = "sar_answered"
PUBLISHING_PAUSED: Final = "publishing_paused"
PUBLISHING_RESUMED: Final = "publishing_resumed"
SUBJECT_NEVER_PUBLISH: Final = "subject_never_publish"
POST_CANCELLED: Final = "post_cancelled"
PUBLISH_UNCONFIRMED: Final = "publish_unconfirmed"
KINDS: Final = frozenset(
    {
        POST_PUBLISHED, PUBLISH_BLOCKED, TAKEDOWN_REQUESTED, TAKEN_DOWN, CONSENT_GRANTED,
        CONSENT_WITHDRAWN, APPROVAL_RECORDED, APPROVER_CERTIFIED, APPROVER_REVOKED,
        SUBJECT_ERASED, SAR_ANSWERED, PUBLISHING_PAUSED, PUBLISHING_RESUMED,
        SUBJECT_NEVER_PUBLISH, POST_CANCELLED, PUBLISH_UNCONFIRMED,
    }
)  # fmt: skip

RESERVED_KEYS: Final = frozenset({"v", "seq", "kind", "ts"})
CHECKPOINT_SUFFIX: Final = ".checkpoint"
_BATCH = 10_000
# The append path runs on every recorded event, so it talks to the driver directly (inside the
# caller's transaction, on the caller's connection): SQLAlchemy's per-statement machinery cost
# more than the insert itself. Plain SQL, parameters bound by the driver.
_HEAD_SQL: Final = "SELECT seq, leaf_hash FROM log_entries ORDER BY seq DESC LIMIT 1"
_LOCK_SQL: Final = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.log_entries'))"
_INSERT_SQL: Final = {
    "sqlite": "INSERT INTO log_entries (seq, kind, body, leaf_hash, created_at) VALUES (?, ?, ?, ?, ?)",
    "postgresql": "INSERT INTO log_entries (seq, kind, body, leaf_hash, created_at) VALUES (%s, %s, %s, %s, %s)",
}
_SEAL_CONTEXT = b"trust-publisher/subject-seal/v1\x00"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def format_ts(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds, the one spelling stored in bodies and created_at."""
    if moment.tzinfo is None:
        raise InvalidInput("log timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


@dataclass(frozen=True)
class Entry:
    """One log entry. ``body`` is the caller's fields; ``raw`` the exact logged bytes."""

    seq: int
    kind: str
    created_at: datetime
    body: dict[str, Any]
    raw: bytes
    leaf_hash: bytes


@dataclass(frozen=True)
class VerifyReport:
    size: int
    root_hash: bytes
    checkpoints_verified: int
    exported_verified: int
    latest_checkpoint_size: int | None

    @property
    def entries_after_checkpoint(self) -> int:
        return self.size - (self.latest_checkpoint_size or 0)


@dataclass(frozen=True)
class ProvenEntry:
    """What an offline check of a tlog proof from ``Ledger.prove`` established."""

    seq: int
    kind: str
    body: dict[str, Any]
    checkpoint: Checkpoint


# --------------------------------------------------------------------------- DDL

_TABLES: Final = ("log_entries", "log_checkpoints", "log_tiles")
_DENSE: Final = ("log_entries", "log_tiles")


def _sqlite_ddl() -> list[str]:
    out: list[str] = []
    for table in _TABLES:
        for op in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
            )
    for table in _DENSE:
        out.append(
            f"CREATE TRIGGER IF NOT EXISTS {table}_dense_seq BEFORE INSERT ON {table} "  # noqa: S608 (our names)
            f"WHEN NEW.seq IS NOT (SELECT coalesce(max(seq) + 1, 0) FROM {table}) "
            f"BEGIN SELECT RAISE(ABORT, '{table}.seq must be max(seq) + 1'); END"
        )
    out.append(
        "CREATE TRIGGER IF NOT EXISTS log_checkpoints_grow BEFORE INSERT ON log_checkpoints "
        "WHEN NEW.size <= (SELECT coalesce(max(size), -1) FROM log_checkpoints) "
        "OR NEW.size > (SELECT coalesce(max(seq) + 1, 0) FROM log_entries) "
        "BEGIN SELECT RAISE(ABORT, 'log_checkpoints.size must grow and not pass the log'); END"
    )
    return out


_PG_REFUSE_CHANGE: Final = """CREATE OR REPLACE FUNCTION {schema}.ledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only: ' || TG_OP || ' refused';
END
$$"""

# The insert rules read the tables in static SQL, schema-qualified with the schema the tables
# are in (the functions pin search_path), which plpgsql plans once per session; a query built
# from TG_TABLE_SCHEMA and run with EXECUTE is planned at every insert (about 0.1 ms of the
# server's CPU per log entry). Should a rule fire on a table of another schema (the schema
# renamed, a copy restored under another name), it checks that table the slower, dynamic way.
_PG_DENSE_SEQ: Final = """CREATE OR REPLACE FUNCTION {schema}.ledger_dense_seq() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE expected bigint;
BEGIN
  IF TG_TABLE_SCHEMA = {schema_literal} AND TG_TABLE_NAME = 'log_entries' THEN
    SELECT coalesce(max(seq) + 1, 0) INTO expected FROM {schema}.log_entries;
  ELSIF TG_TABLE_SCHEMA = {schema_literal} AND TG_TABLE_NAME = 'log_tiles' THEN
    SELECT coalesce(max(seq) + 1, 0) INTO expected FROM {schema}.log_tiles;
  ELSE
    EXECUTE 'SELECT coalesce(max(seq) + 1, 0) FROM '
      || quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME) INTO expected;
  END IF;
  IF NEW.seq IS DISTINCT FROM expected THEN
    RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || '.seq must be max(seq) + 1 = ' || expected;
  END IF;
  RETURN NEW;
END
$$"""
_PG_CHECKPOINT_GROWS: Final = """CREATE OR REPLACE FUNCTION {schema}.ledger_checkpoint_grows() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE last_size bigint; log_size bigint;
BEGIN
  IF TG_TABLE_SCHEMA = {schema_literal} AND TG_TABLE_NAME = 'log_checkpoints' THEN
    SELECT coalesce(max(size), -1) INTO last_size FROM {schema}.log_checkpoints;
    SELECT coalesce(max(seq) + 1, 0) INTO log_size FROM {schema}.log_entries;
  ELSE
    EXECUTE 'SELECT coalesce(max(size), -1) FROM '
      || quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME) INTO last_size;
    EXECUTE 'SELECT coalesce(max(seq) + 1, 0) FROM '
      || quote_ident(TG_TABLE_SCHEMA) || '.log_entries' INTO log_size;
  END IF;
  IF NEW.size <= last_size OR NEW.size > log_size THEN
    RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || '.size must grow and not pass the log';
  END IF;
  RETURN NEW;
END
$$"""


def _pg_ddl(schema: str) -> list[str]:
    if any(c in schema for c in "$%:\0") or not schema:
        raise LedgerError(
            f"PostgreSQL schema {schema!r} has a character the ledger's rules cannot be written with "
            "($, %, : or NUL): keep the tables in a schema whose name has none"
        )
    ident = '"' + schema.replace('"', '""') + '"'
    names = {"schema": ident, "schema_literal": "'" + schema.replace("'", "''") + "'"}
    out = [_PG_REFUSE_CHANGE.format(**names), _PG_DENSE_SEQ.format(**names), _PG_CHECKPOINT_GROWS.format(**names)]
    inserts = {
        "log_entries": "ledger_dense_seq",
        "log_checkpoints": "ledger_checkpoint_grows",
        "log_tiles": "ledger_dense_seq",
    }
    for table in _TABLES:
        on = f"{ident}.{table}"
        triggers = {
            f"{table}_no_change": f"BEFORE UPDATE OR DELETE ON {on} FOR EACH ROW "
            f"EXECUTE FUNCTION {ident}.ledger_refuse_change()",
            f"{table}_no_truncate": f"BEFORE TRUNCATE ON {on} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION {ident}.ledger_refuse_change()",
            f"{table}_insert_rule": f"BEFORE INSERT ON {on} FOR EACH ROW EXECUTE FUNCTION {ident}.{inserts[table]}()",
        }
        for name, spec in triggers.items():
            out.append(f"CREATE OR REPLACE TRIGGER {name} {spec}")
            out.append(f"ALTER TABLE {on} ENABLE ALWAYS TRIGGER {name}")
    return out


def append_only_ddl(dialect_name: str, schema: str | None = None) -> list[str]:
    """The statements that make the log tables append-only in the database itself.

    SQLite: triggers refusing UPDATE and DELETE, and a dense-sequence INSERT trigger (without
    it ``INSERT OR REPLACE`` silently overwrites a row). PostgreSQL (14+): the same rules as
    plpgsql triggers plus a TRUNCATE trigger, all ``ENABLE ALWAYS`` so they also fire with
    ``session_replication_role = replica``; `schema` (PostgreSQL only, required there) is the
    one the tables are in: every name is qualified with it. Idempotent. Contains no ``%`` and
    no ``:name``.
    """
    if dialect_name == "sqlite":
        return _sqlite_ddl()
    if dialect_name == "postgresql":
        if schema is None:
            raise LedgerError("the ledger's PostgreSQL rules need the schema its tables are in")
        return _pg_ddl(schema)
    raise LedgerError(f"no append-only rules for database dialect {dialect_name!r}")


_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def grant_app_role_ddl(role: str) -> list[str]:
    """PostgreSQL grants for the runtime role: INSERT and SELECT only on the log tables."""
    if not _ROLE.fullmatch(role):
        raise InvalidInput(f"{role!r} is not a plain PostgreSQL role name")
    quoted = f'"{role}"'
    logs = ", ".join(_TABLES)
    return [
        f"REVOKE ALL ON {logs}, subject_keys FROM {quoted}",
        f"GRANT SELECT, INSERT ON {logs} TO {quoted}",
        f"GRANT SELECT, INSERT, DELETE ON subject_keys TO {quoted}",
    ]


def install(conn: Connection) -> None:
    """Create the ledger tables and the append-only rules (idempotent). On PostgreSQL the rules
    go in the schema the tables are in (found as the connection's search_path finds them)."""
    metadata.create_all(conn)
    schema = _tables_schema(conn) if conn.dialect.name == "postgresql" else None
    for statement in append_only_ddl(conn.dialect.name, schema):
        conn.exec_driver_sql(statement)


_SCHEMA_OF: Final = text(
    "SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.oid = pg_catalog.to_regclass(:t)"
)


def _tables_schema(conn: Connection) -> str:
    found = {table: conn.execute(_SCHEMA_OF, {"t": table}).scalar() for table in _TABLES}
    schemas = set(found.values())
    if len(schemas) != 1 or None in schemas:
        where = ", ".join(f"{t} in {s or 'no schema on the search_path'}" for t, s in found.items())
        raise LedgerError(f"the log's tables must be in one schema ({where}): move them into one")
    return str(schemas.pop())


# --------------------------------------------------------------------------- helpers


def commit_text(text_value: str) -> dict[str, str]:
    """A salted commitment to post text: SHA-256(salt || UTF-8 text), both hex.

    Keep the salt outside the log (it is what makes "Well done Amelia S." unguessable);
    without it the commitment reveals nothing, with it anyone can check the text.
    """
    salt = secrets.token_bytes(16)
    return {"salt": salt.hex(), "sha256": _text_digest(salt, text_value)}


def check_text_commit(text_value: str, commitment: Mapping[str, str]) -> bool:
    salt = bytes.fromhex(commitment["salt"])
    return secrets.compare_digest(_text_digest(salt, text_value), commitment["sha256"])


def _text_digest(salt: bytes, text_value: str) -> str:
    return hashlib.sha256(salt + text_value.encode("utf-8")).hexdigest()


def verify_entry_proof(proof_text: str, vkey: str | NoteVerifier) -> ProvenEntry:
    """Check a proof from ``Ledger.prove`` with nothing but its text and the log's vkey."""
    verified = verify_tlog_proof(proof_text, vkey)
    assert verified.extra is not None  # verify_tlog_proof hashed it
    try:
        doc = canonical.parse_object(verified.extra, require_canonical=True)
    except (InvalidInput, canonical.CanonicalError) as exc:
        raise LedgerError(f"the proven entry is not a canonical log body: {exc}") from exc
    if doc.get("seq") != verified.index:
        raise LedgerError(f"the proven entry says seq {doc.get('seq')!r} but the proof is for {verified.index}")
    body = {k: v for k, v in doc.items() if k not in RESERVED_KEYS}
    return ProvenEntry(verified.index, str(doc.get("kind")), body, verified.checkpoint)


def _entry_from_row(seq: int, kind: str, raw: bytes, leaf: bytes) -> Entry:
    doc = canonical.parse_object(raw)
    body = {k: v for k, v in doc.items() if k not in RESERVED_KEYS}
    return Entry(seq, kind, parse_ts(doc["ts"]), body, raw, leaf)


def _read_checkpoint_dir(directory: Path, verifier: NoteVerifier, origin: str) -> dict[int, Checkpoint]:
    found: dict[int, Checkpoint] = {}
    for path in sorted(directory.glob(f"*{CHECKPOINT_SUFFIX}")):
        try:
            checkpoint = open_checkpoint(path.read_text(encoding="utf-8"), verifier, origin)
        except LedgerError as exc:
            raise LogIntegrityError(None, f"exported checkpoint {path.name}: {exc}") from exc
        previous = found.get(checkpoint.size)
        if previous is not None and previous.root_hash != checkpoint.root_hash:
            raise LogIntegrityError(None, f"two exported checkpoints at size {checkpoint.size} differ")
        found[checkpoint.size] = checkpoint
    return found


class Ledger:
    """The log repository. Every method works inside the caller's transaction ``conn``.

    ``signer`` signs checkpoints (it lives in the vault, never the database); a Ledger that
    only verifies can be given ``verifier`` instead. ``origin`` defaults to the key name.
    On SQLite, open write transactions with BEGIN IMMEDIATE so two writers cannot both read
    the same head; on PostgreSQL appends take a transaction-scoped advisory lock.
    """

    def __init__(
        self,
        bind: Engine | Connection | None = None,
        signer: NoteSigner | None = None,
        *,
        verifier: NoteVerifier | None = None,
        origin: str | None = None,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        if verifier is None and signer is not None:
            verifier = signer.verifier
        self.bind = bind
        self.signer = signer
        self.verifier = verifier
        self.origin = origin or (verifier.name if verifier is not None else None)
        self._now = now
        self._frontier: merkle.CompactRange | None = None
        self._tip = tiles.Tip([], 0)  # the leaves of the unfinished tile, tiles not yet stored
        self._head_leaf: bytes | None = None
        self._signed: merkle.CompactRange | None = None  # the frontier at the last checkpoint this process signed

    # ------------------------------------------------------------------ appending

    def append(self, conn: Connection, kind: str, body: Mapping[str, Any]) -> Entry:
        """Append one entry at the next dense seq; returns it. Commits nothing."""
        if kind not in KINDS:
            raise InvalidInput(f"unknown log entry kind {kind!r}")
        clash = RESERVED_KEYS.intersection(body)
        if clash:
            raise InvalidInput(f"log body keys {sorted(clash)} are reserved for the log itself")
        frontier = self._current_frontier(conn, lock=True)  # begins the transaction if need be
        seq = frontier.size
        moment = self._now()
        ts = format_ts(moment)
        raw = canonical.encode_versioned({**body, "seq": seq, "kind": kind, "ts": ts})
        leaf = merkle.leaf_hash(raw)
        insert, row = _INSERT_SQL[conn.dialect.name], (seq, kind, raw, leaf, ts)
        with db.driver(conn, insert, row) as cursor:  # SQLAlchemy's execute costs more than the INSERT
            cursor.execute(insert, row)
        frontier.append(leaf)
        tip = self._tip
        tip.add(leaf)
        if tip.pending:  # a tile was finished (once per 256 appends), or tiles were missing
            tip.flush(conn)
        self._head_leaf = leaf
        return Entry(seq, kind, moment.astimezone(UTC), dict(body), raw, leaf)

    def head(self, conn: Connection) -> tuple[int, bytes]:
        """The current tree size and root hash (from the cached frontier). Give it a connection
        in a transaction (a read transaction will do): one with none begins one, which on
        SQLite takes the write lock."""
        frontier = self._current_frontier(conn)
        return frontier.size, frontier.root()

    def _current_frontier(self, conn: Connection, lock: bool = False) -> merkle.CompactRange:
        """The frontier at the newest entry. `lock`: first take the log's lock, held until the
        transaction ends (PostgreSQL: an advisory lock, waited for in the same round trip as the
        read; SQLite: the transaction's write lock holds it already)."""
        locking = lock and conn.dialect.name == "postgresql"
        row = db.read_after_lock(conn, _LOCK_SQL if locking else None, _HEAD_SQL)
        size, leaf = (0, None) if row is None else (row[0] + 1, bytes(row[1]))
        cached = self._frontier
        if cached is not None and cached.size == size and self._head_leaf == leaf:
            return cached
        frontier, self._tip = tiles.load(conn, size)  # tiles and the unfinished tile's leaves
        self._frontier, self._head_leaf = frontier, leaf
        return frontier

    # ------------------------------------------------------------------ checkpoints

    def _verifier(self) -> tuple[NoteVerifier, str]:
        if self.verifier is None or self.origin is None:
            raise LedgerError("this Ledger has no log verifier key: give it the signer or the vkey")
        return self.verifier, self.origin

    def _open(self, note: str, size: int, root_hash: bytes) -> Checkpoint:
        verifier, origin = self._verifier()
        try:
            checkpoint = open_checkpoint(note, verifier, origin)
        except LedgerError as exc:
            raise LogIntegrityError(None, f"stored checkpoint at size {size}: {exc}") from exc
        if checkpoint.size != size or checkpoint.root_hash != bytes(root_hash):
            raise LogIntegrityError(None, f"stored checkpoint at size {size} differs from its note")
        return checkpoint

    def latest_checkpoint(self, conn: Connection) -> tuple[Checkpoint, str] | None:
        """The newest stored checkpoint, signature verified, with its note text."""
        row = conn.execute(
            select(log_checkpoints.c.size, log_checkpoints.c.root_hash, log_checkpoints.c.note)
            .order_by(log_checkpoints.c.size.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        return self._open(row.note, row.size, row.root_hash), row.note

    def checkpoint(self, conn: Connection, signer: NoteSigner | None = None) -> str:
        """Sign and store a checkpoint for the current log; returns the signed note.

        Never signs a tree inconsistent with the last stored checkpoint. The process that signed
        that checkpoint extends the very tree it signed with the entries appended since (reading
        only those): consistent by construction, and cheap at millions of entries. Any other
        process proves it with an RFC 9162 consistency proof built from the stored tiles (and
        the leaves of at most two tiles), and refuses (LogIntegrityError) if the proof fails.
        Rows edited under a running signer, or leaves edited under their tile, are not re-read
        here; `verify` names them.
        """
        signer = signer or self.signer
        if signer is None:
            raise LedgerError("no checkpoint signer: load the log key from the vault")
        if self.verifier is None:
            self.verifier, self.origin = signer.verifier, self.origin or signer.name
        size = self._current_frontier(conn, lock=True).size
        last = self.latest_checkpoint(conn)
        old = last[0] if last else None
        if old is not None and old.size > size:
            raise LogIntegrityError(size, f"the log has {size} entries but a checkpoint at size {old.size} was signed")
        if old is not None and last is not None and old.size == size:
            return last[1]
        new_root = self._extended_root(conn, old, size) or self._consistent_root(conn, old, size)
        self._signed = merkle.CompactRange(size, self._frontier.hashes) if self._frontier else None
        assert self.origin is not None
        note = sign_checkpoint(Checkpoint(self.origin, size, new_root), signer)
        conn.execute(
            insert(log_checkpoints).values(size=size, root_hash=new_root, note=note, created_at=format_ts(self._now()))
        )
        return note

    def _extended_root(self, conn: Connection, old: Checkpoint | None, size: int) -> bytes | None:
        """The new root without reading the whole log: this process holds the frontier at the
        last checkpoint (its root is the signed one), so extending it with the leaves appended
        since gives a tree that extends the old one by construction. None if it cannot."""
        signed = self._signed
        if old is None or signed is None or signed.size != old.size or signed.root() != old.root_hash:
            return None
        frontier = signed.copy()
        frontier.extend(self._leaf_range(conn, old.size, size))
        current = self._frontier
        if frontier.size != size or (
            current is not None and current.size == size and current.root() != frontier.root()
        ):
            return None  # something moved under this process: take the long way, which proves it
        return frontier.root()

    def _leaf_range(self, conn: Connection, start: int, end: int) -> Iterator[bytes]:
        query = (
            select(log_entries.c.leaf_hash)
            .where(log_entries.c.seq >= start, log_entries.c.seq < end)
            .order_by(log_entries.c.seq)
        )
        for (leaf,) in conn.execute(query):
            yield bytes(leaf)

    def _consistent_root(self, conn: Connection, old: Checkpoint | None, size: int) -> bytes:
        """The root over [0, size), after proving it extends ``old``; from the stored tiles and
        the leaves of at most two tiles (the unfinished one, and the one ``old`` ends in)."""
        tree = tiles.TreeReader(conn, size)
        proof: list[bytes] = []
        if old is not None and 0 < old.size < size:
            proof = [tree.range_hash(lo, hi) for lo, hi in merkle.consistency_ranges(old.size, size)]
        new_root = tree.root()
        cached = self._frontier
        if cached is not None and cached.size == size and cached.root() != new_root:
            raise LogIntegrityError(None, "the stored leaves changed under this process: refusing to sign")
        if old is not None:
            self._check_extends(old, size, proof, new_root)
        return new_root

    @staticmethod
    def _check_extends(old: Checkpoint, size: int, proof: list[bytes], new_root: bytes) -> None:
        try:
            if old.size == 0:
                if old.root_hash != merkle.EMPTY_ROOT:
                    raise merkle.ProofError("the empty checkpoint has a non-empty root")
            else:
                merkle.verify_consistency(old.size, size, proof, old.root_hash, new_root)
        except merkle.ProofError as exc:
            raise LogIntegrityError(
                None, f"refusing to sign size {size}: not consistent with checkpoint {old.size} ({exc})"
            ) from exc

    # ------------------------------------------------------------------ verification

    def verify(
        self, conn: Connection, against_dir: Path | str | None = None, *, processes: int | None = None
    ) -> VerifyReport:
        """Re-derive the whole log and check it against every checkpoint.

        Checks: seq dense from 0; every leaf hash equals SHA-256(0x00 || body); every body
        is log JSON naming its own seq, kind and ts; every stored checkpoint's signature,
        and its root against the root recomputed at its size (so successive checkpoints are
        consistent); and likewise every checkpoint exported to ``against_dir``, which is
        what exposes a truncated-and-rebuilt log. In the same pass every stored tile is
        compared with the hash of its 256 entries (a tile not stored yet is no error: appends
        store it). Raises LogIntegrityError naming the first bad sequence number (a bad tile's
        first entry; None when only a checkpoint itself is bad).

        The rows are checked by ``processes`` processes (this one and workers it spawns; by
        default one per core for a log of 100,000 entries or more, else this one alone); the
        result and the error named are the same either way.
        """
        verifier, origin = self._verifier()
        stored = self._stored_checkpoints(conn)
        exported = {} if against_dir is None else _read_checkpoint_dir(Path(against_dir), verifier, origin)
        expected: dict[int, list[tuple[str, bytes]]] = {}
        for source, found in (("stored", stored), ("exported", exported)):
            for size, checkpoint in found.items():
                expected.setdefault(size, []).append((source, checkpoint.root_hash))
        stored_tiles = tiles.read_tiles(conn)
        if processes is None:
            processes = rederive.processes_for(conn.execute(LOG_SIZE).scalar_one())
        with closing(rederive.pieces(conn)) as pieces:  # its cursor closed here, in this transaction
            rederived = rederive.rederive(pieces, stored_tiles, expected, processes)
        seq = rederived.size
        beyond = [s for s in expected if s > seq]
        if beyond:
            raise LogIntegrityError(
                seq, f"the log ends at {seq} entries but a checkpoint covers {max(beyond)}: entries are missing"
            )
        rederived.finish()
        latest = max(stored) if stored else None
        return VerifyReport(seq, rederived.frontier().root(), len(stored), len(exported), latest)

    def _stored_checkpoints(self, conn: Connection) -> dict[int, Checkpoint]:
        rows = conn.execute(
            select(log_checkpoints.c.size, log_checkpoints.c.root_hash, log_checkpoints.c.note).order_by(
                log_checkpoints.c.size
            )
        )
        return {row.size: self._open(row.note, row.size, row.root_hash) for row in rows}

    # ------------------------------------------------------------------ proofs and export

    def prove(self, conn: Connection, seq: int) -> str:
        """A self-contained c2sp.org/tlog-proof@v1 text for entry ``seq``.

        It holds the entry body (the ``extra`` line), the inclusion proof and the latest
        signed checkpoint; ``verify_entry_proof(text, vkey)`` checks it offline.
        """
        return self.prove_many(conn, [seq])[seq]

    def prove_many(self, conn: Connection, seqs: Iterable[int]) -> dict[int, str]:
        """``prove`` for several entries (for SAR packs), from the stored tiles and the leaves
        of each entry's own tile. Every proof is checked against the signed root before it is
        returned: a wrong tile or leaf is refused (LogIntegrityError), never handed out."""
        latest = self.latest_checkpoint(conn)
        wanted = sorted(set(seqs))
        if latest is None:
            raise LedgerError("no checkpoint yet: run 'publisher log checkpoint' first")
        checkpoint, note = latest
        late = [s for s in wanted if not 0 <= s < checkpoint.size]
        if late:
            raise LedgerError(f"entry {late[0]} is not covered by the latest checkpoint ({checkpoint.size})")
        tree = tiles.TreeReader(conn, checkpoint.size)  # caches range hashes across the entries
        if tree.root() != checkpoint.root_hash:
            raise LogIntegrityError(
                None,
                f"the stored tiles and leaves do not match checkpoint {checkpoint.size}: run 'publisher log verify'",
            )
        out: dict[int, str] = {}
        for seq in wanted:
            path = [tree.range_hash(lo, hi) for lo, hi in merkle.inclusion_ranges(seq, checkpoint.size)]
            raw = self._body(conn, seq)
            leaf = merkle.leaf_hash(raw)
            if leaf != tree.leaf(seq):
                raise LogIntegrityError(seq, "stored leaf hash does not match the entry body")
            try:
                merkle.verify_inclusion(seq, checkpoint.size, leaf, path, checkpoint.root_hash)
            except merkle.ProofError as exc:
                raise LogIntegrityError(
                    seq, f"its inclusion proof does not lead to checkpoint {checkpoint.size} (a stored tile is wrong?)"
                ) from exc
            out[seq] = TlogProof(seq, tuple(path), note, extra=raw).text()
        return out

    def _body(self, conn: Connection, seq: int) -> bytes:
        raw = conn.execute(select(log_entries.c.body).where(log_entries.c.seq == seq)).scalar_one()
        return bytes(raw)

    def export_checkpoints(self, conn: Connection, directory: Path | str) -> list[Path]:
        """Write each stored checkpoint to ``directory/<size>.checkpoint``; returns new files.

        Existing files are never overwritten: an exported checkpoint is evidence.
        """
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for size, _ in self._stored_checkpoints(conn).items():
            path = target / f"{size:012d}{CHECKPOINT_SUFFIX}"
            if path.exists():
                continue
            note = conn.execute(select(log_checkpoints.c.note).where(log_checkpoints.c.size == size)).scalar_one()
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
            tmp.write_text(note, encoding="utf-8")
            os.replace(tmp, path)
            written.append(path)
        return written

    def entries(
        self, conn: Connection, since: int | datetime | None = None, kind: str | None = None
    ) -> Iterator[Entry]:
        """Entries in seq order; ``since`` is a seq (inclusive) or an aware datetime."""
        query = select(log_entries.c.seq, log_entries.c.kind, log_entries.c.body, log_entries.c.leaf_hash).order_by(
            log_entries.c.seq
        )
        if isinstance(since, datetime):
            query = query.where(log_entries.c.created_at >= format_ts(since))
        elif since is not None:
            query = query.where(log_entries.c.seq >= since)
        if kind is not None:
            query = query.where(log_entries.c.kind == kind)
        with closing(conn.execute(query.execution_options(yield_per=_BATCH))) as result:
            for seq, kind_, raw, leaf in result:
                yield _entry_from_row(seq, kind_, bytes(raw), bytes(leaf))

    def entries_at(self, conn: Connection, seqs: Iterable[int]) -> Iterator[Entry]:
        """The entries with these sequence numbers, in seq order."""
        wanted = sorted(set(seqs))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = (
                select(log_entries.c.seq, log_entries.c.kind, log_entries.c.body, log_entries.c.leaf_hash)
                .where(log_entries.c.seq.in_(chunk))
                .order_by(log_entries.c.seq)
            )
            for seq, kind_, raw, leaf in conn.execute(query):
                yield _entry_from_row(seq, kind_, bytes(raw), bytes(leaf))

    # ------------------------------------------------------------------ subjects

    def subject_ref(self, conn: Connection, subject_id: str) -> str:
        """The subject's pseudonym, creating it and its key on first use."""
        existing = conn.execute(
            select(subject_keys.c.ref).where(subject_keys.c.subject_id == subject_id)
        ).scalar_one_or_none()
        if existing is not None:
            return str(existing)
        values = {
            "ref": "subj:" + secrets.token_hex(16),
            "subject_id": subject_id,
            "key": ChaCha20Poly1305.generate_key(),
            "created_at": format_ts(self._now()),
        }
        dialect = conn.dialect.name
        make = pg_insert if dialect == "postgresql" else sqlite_insert if dialect == "sqlite" else None
        if make is None:
            conn.execute(insert(subject_keys).values(**values))
        else:
            conn.execute(make(subject_keys).values(**values).on_conflict_do_nothing())
        return str(conn.execute(select(subject_keys.c.ref).where(subject_keys.c.subject_id == subject_id)).scalar_one())

    def _key(self, conn: Connection, ref: str) -> bytes | None:
        key = conn.execute(select(subject_keys.c.key).where(subject_keys.c.ref == ref)).scalar_one_or_none()
        return None if key is None else bytes(key)

    def seal(self, conn: Connection, ref: str, fields: Mapping[str, Any]) -> str:
        """Encrypt personal ``fields`` under the subject's key; base64(nonce || ciphertext)."""
        key = self._key(conn, ref)
        if key is None:
            raise LedgerError(f"subject {ref} has no key (erased, or never created)")
        nonce = secrets.token_bytes(12)
        sealed = ChaCha20Poly1305(key).encrypt(nonce, canonical.encode(dict(fields)), _SEAL_CONTEXT + ref.encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, conn: Connection, ref: str, sealed: str) -> dict[str, Any] | None:
        """Decrypt fields sealed for ``ref``; None once the subject has been erased."""
        key = self._key(conn, ref)
        if key is None:
            return None
        try:
            blob = base64.b64decode(sealed, validate=True)
            plain = ChaCha20Poly1305(key).decrypt(blob[:12], blob[12:], _SEAL_CONTEXT + ref.encode())
        except (InvalidTag, ValueError) as exc:
            raise LedgerError(f"sealed fields for subject {ref} cannot be decrypted (altered?)") from exc
        return canonical.parse_object(plain)

    def erase(self, conn: Connection, ref: str) -> bool:
        """Crypto-shred: delete the subject's key and id mapping. True if there was one.

        The caller logs ``subject_erased`` with the ref; the log itself is untouched.
        """
        result = conn.execute(subject_keys.delete().where(subject_keys.c.ref == ref))
        return bool(result.rowcount)
