"""The ledger on every store: SQLite (always) and PostgreSQL (PUBLISHER_TEST_DATABASE_URL)."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from publisher.domain.canonical import CanonicalError
from publisher.errors import InvalidInput, LedgerError, LogIntegrityError
from publisher.ledger import canonical, log, merkle
from publisher.ledger.log import Ledger, install, verify_entry_proof
from publisher.ledger.note import Checkpoint, NoteSigner, open_note
from tests.conftest import wait_for_a_waiting_advisory_lock

SIGNER = NoteSigner("trust.example/social-audit/v1", Ed25519PrivateKey.generate())


def _fill(ledger: Ledger, conn: Connection, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        kind = log.POST_PUBLISHED if i % 3 else log.CONSENT_GRANTED
        ledger.append(conn, kind, {"post": f"post:{i}", "platforms": ["x", "facebook"], "n": i})


def _built(engine: Engine, n: int = 12) -> Ledger:
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        _fill(ledger, conn, n // 2)
        ledger.checkpoint(conn)
        _fill(ledger, conn, n - n // 2, start=n // 2)
        ledger.checkpoint(conn)
    return ledger


def _drop_guards(conn: Connection) -> None:
    """What an attacker with owner rights does first."""
    if conn.dialect.name == "sqlite":
        for name in ("no_update", "no_delete", "dense_seq"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS log_entries_{name}")
        for name in ("no_update", "no_delete", "grow"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS log_checkpoints_{name}")
        for name in ("no_update", "no_delete", "dense_seq"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS log_tiles_{name}")
    else:
        for table in ("log_entries", "log_checkpoints", "log_tiles"):
            conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")


def _row(conn: Connection, seq: int) -> tuple[str, bytes, bytes, str]:
    row = conn.execute(
        text("SELECT kind, body, leaf_hash, created_at FROM log_entries WHERE seq = :s"), {"s": seq}
    ).one()
    return row[0], bytes(row[1]), bytes(row[2]), row[3]


def _put(conn: Connection, seq: int, kind: str, body: bytes, leaf: bytes, created_at: str) -> None:
    conn.execute(
        text("UPDATE log_entries SET kind = :k, body = :b, leaf_hash = :h, created_at = :c WHERE seq = :s"),
        {"k": kind, "b": body, "h": leaf, "c": created_at, "s": seq},
    )


# ---------------------------------------------------------------- round trip


def test_append_checkpoint_verify_round_trip(engine: Engine, tmp_path: Path) -> None:
    ledger = _built(engine, 12)
    with engine.begin() as conn:
        report = ledger.verify(conn)
        assert (report.size, report.checkpoints_verified, report.latest_checkpoint_size) == (12, 2, 12)
        assert report.root_hash == ledger.head(conn)[1]
        entries = list(ledger.entries(conn, since=10))
        assert [e.seq for e in entries] == [10, 11]
        assert entries[0].body == {"post": "post:10", "platforms": ["x", "facebook"], "n": 10}
        assert [e.seq for e in ledger.entries(conn, kind=log.CONSENT_GRANTED)] == [0, 3, 6, 9]
        assert ledger.export_checkpoints(conn, tmp_path / "cps")
        assert ledger.verify(conn, tmp_path / "cps").exported_verified == 2


def test_append_refuses_unknown_kind_and_reserved_keys(engine: Engine) -> None:
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn, pytest.raises(InvalidInput):
        ledger.append(conn, "post_deleted_quietly", {})
    with engine.begin() as conn, pytest.raises(InvalidInput):
        ledger.append(conn, log.POST_PUBLISHED, {"seq": 5})
    with engine.begin() as conn, pytest.raises(CanonicalError):
        ledger.append(conn, log.POST_PUBLISHED, {"score": 0.5})


def test_rolled_back_append_does_not_poison_the_cached_frontier(engine: Engine) -> None:
    ledger = _built(engine, 5)
    with engine.connect() as conn:
        ledger.append(conn, log.TAKEN_DOWN, {"post": "post:1"})
        conn.rollback()
    with engine.begin() as conn:
        assert ledger.append(conn, log.TAKEN_DOWN, {"post": "post:2"}).seq == 5
        ledger.checkpoint(conn)
        assert ledger.verify(conn).size == 6


# ---------------------------------------------------------------- tampering


def test_tampering_is_detected_naming_the_sequence(engine: Engine) -> None:
    ledger = _built(engine, 10)
    with engine.begin() as conn:
        _drop_guards(conn)
        kind, body, leaf, ts = _row(conn, 4)
        _put(conn, 4, kind, body.replace(b"post:4", b"post:5"), leaf, ts)
    with engine.begin() as conn, pytest.raises(LogIntegrityError) as caught:
        ledger.verify(conn)
    assert caught.value.seq == 4


def _attack(conn: Connection, attack: tuple[str, int, int, int, int]) -> int:
    """Apply one attack; returns the sequence number verify must name."""
    name, a, b, position, mask = attack
    if name == "delete":
        conn.execute(text("DELETE FROM log_entries WHERE seq = :s"), {"s": a})
        return a
    if name == "swap":
        lo, hi = min(a, b), max(a, b)
        row_lo, row_hi = _row(conn, lo), _row(conn, hi)
        _put(conn, lo, *row_hi)
        _put(conn, hi, *row_lo)
        return lo
    kind, body, leaf, ts = _row(conn, a)
    target = bytearray(body if name == "body" else leaf)
    target[position % len(target)] ^= mask
    if name == "body":
        _put(conn, a, kind, bytes(target), leaf, ts)
    else:
        _put(conn, a, kind, body, bytes(target), ts)
    return a


N_PROPERTY = 13
attacks = st.tuples(
    st.sampled_from(["body", "leaf_hash", "delete", "swap"]),
    st.integers(0, N_PROPERTY - 1),
    st.integers(0, N_PROPERTY - 1),
    st.integers(0, 10_000),
    st.integers(1, 255),
).filter(lambda t: t[0] != "swap" or t[1] != t[2])


@settings(max_examples=80, deadline=None)
@given(attack=attacks)
def test_any_flipped_byte_deleted_or_moved_row_is_detected(attack: tuple[str, int, int, int, int]) -> None:
    engine = create_engine("sqlite://")  # one in-memory database per example
    with engine.begin() as conn:
        install(conn)
    _built(engine, N_PROPERTY)
    with engine.begin() as conn:
        _drop_guards(conn)
        expected = _attack(conn, attack)
    with engine.begin() as conn, pytest.raises(LogIntegrityError) as caught:
        Ledger(engine, SIGNER).verify(conn)
    assert caught.value.seq == expected, caught.value.message
    engine.dispose()


def test_truncate_and_rebuild_is_caught_by_exported_checkpoints(engine: Engine, tmp_path: Path) -> None:
    ledger = _built(engine, 10)
    with engine.begin() as conn:
        ledger.export_checkpoints(conn, tmp_path / "exported")
    with engine.begin() as conn:
        _drop_guards(conn)
        conn.exec_driver_sql("DELETE FROM log_checkpoints")
        conn.exec_driver_sql("DELETE FROM log_entries")
    forger = Ledger(engine, SIGNER)  # even holding the log key
    with engine.begin() as conn:
        _fill(forger, conn, 12, start=100)
        forger.checkpoint(conn)
    with engine.begin() as conn:
        assert forger.verify(conn).size == 12  # self-consistent on its own
        with pytest.raises(LogIntegrityError, match="exported checkpoint") as caught:
            forger.verify(conn, tmp_path / "exported")
    assert caught.value.seq == 0


def test_truncated_log_is_named_at_its_new_end(engine: Engine, tmp_path: Path) -> None:
    ledger = _built(engine, 10)
    with engine.begin() as conn:
        ledger.export_checkpoints(conn, tmp_path / "exported")
        _drop_guards(conn)
        conn.exec_driver_sql("DELETE FROM log_checkpoints")
        conn.exec_driver_sql("DELETE FROM log_entries WHERE seq >= 7")
    with engine.begin() as conn, pytest.raises(LogIntegrityError) as caught:
        Ledger(engine, SIGNER).verify(conn, tmp_path / "exported")
    assert caught.value.seq == 7


def test_altered_stored_checkpoint_is_detected(engine: Engine) -> None:
    ledger = _built(engine, 6)
    with engine.begin() as conn:
        _drop_guards(conn)
        conn.execute(text("UPDATE log_checkpoints SET note = replace(note, '\n6\n', '\n7\n')"))
    with engine.begin() as conn, pytest.raises(LogIntegrityError, match="checkpoint"):
        ledger.verify(conn)


@pytest.mark.parametrize("fresh", [True, False])
def test_checkpoint_refuses_to_sign_inconsistent_history(engine: Engine, fresh: bool) -> None:
    ledger = _built(engine, 8)
    with engine.connect() as conn:
        true_leaves = [bytes(r[0]) for r in conn.execute(text("SELECT leaf_hash FROM log_entries ORDER BY seq"))]
    with engine.begin() as conn:
        _drop_guards(conn)
        kind, body, _, ts = _row(conn, 2)
        forged = body.replace(b"post:2", b"post:9")
        _put(conn, 2, kind, forged, merkle.leaf_hash(forged), ts)  # a careful forger
    signer_side = Ledger(engine, SIGNER) if fresh else ledger
    if fresh:  # a process that only has the stored leaves proves consistency from them, and refuses
        with engine.begin() as conn:
            _fill(signer_side, conn, 3, start=8)
            with pytest.raises(LogIntegrityError, match="refusing to sign"):
                signer_side.checkpoint(conn)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT max(size) FROM log_checkpoints")).scalar_one() == 8
        return
    # The process that signed size 8 extends the tree it signed (reading only the new leaves):
    # what it signs is consistent with checkpoint 8 by construction, not the forged row...
    with engine.begin() as conn:
        _fill(signer_side, conn, 3, start=8)
        note = signer_side.checkpoint(conn)
    with engine.begin() as conn:
        old_note = conn.execute(text("SELECT note FROM log_checkpoints WHERE size = 8")).scalar_one()
    old_cp = Checkpoint.parse(open_note(old_note, [SIGNER.verifier]))
    new_cp = Checkpoint.parse(open_note(note, [SIGNER.verifier]))
    with engine.connect() as conn:
        added = [
            bytes(r[0]) for r in conn.execute(text("SELECT leaf_hash FROM log_entries WHERE seq >= 8 ORDER BY seq"))
        ]
    leaves = true_leaves + added
    proof = merkle.consistency_proof(8, leaves)
    merkle.verify_consistency(8, 11, proof, old_cp.root_hash, new_cp.root_hash)
    # ...and the forged row is named by verify.
    with engine.begin() as conn, pytest.raises(LogIntegrityError) as caught:
        Ledger(engine, SIGNER).verify(conn)
    assert caught.value.seq is not None and caught.value.seq <= 2  # the first range that no longer matches


# ---------------------------------------------------------------- database guards


def _refused(engine: Engine, statement: str, params: dict[str, object] | None = None) -> None:
    with engine.connect() as conn:
        with pytest.raises(DBAPIError):
            conn.execute(text(statement), params or {})
        conn.rollback()


def _row_zero(engine: Engine) -> tuple[str, bytes, bytes, str]:
    with engine.connect() as conn:
        return _row(conn, 0)


def test_database_refuses_update_delete_and_gaps(engine: Engine) -> None:
    _built(engine, 4)
    before = _row_zero(engine)
    _refused(engine, "UPDATE log_entries SET kind = 'taken_down' WHERE seq = 0")
    _refused(engine, "DELETE FROM log_entries WHERE seq = 3")
    _refused(engine, "DELETE FROM log_entries")
    _refused(engine, "UPDATE log_checkpoints SET note = 'x'")
    _refused(engine, "DELETE FROM log_checkpoints")
    row = {"k": "x", "b": b"{}", "h": bytes(32), "c": "now"}
    _refused(engine, "INSERT INTO log_entries VALUES (9, :k, :b, :h, :c)", row)
    _refused(engine, "INSERT INTO log_checkpoints VALUES (1, :h, 'n', :c)", row)
    _refused(engine, "INSERT INTO log_checkpoints VALUES (5, :h, 'n', :c)", row)
    assert _row_zero(engine) == before


def test_database_refuses_overwriting_inserts(engine: Engine) -> None:
    _built(engine, 4)
    before = _row_zero(engine)
    row = {"k": "x", "b": b"{}", "h": bytes(32), "c": "now"}
    if engine.dialect.name == "sqlite":
        _refused(engine, "INSERT OR REPLACE INTO log_entries VALUES (0, :k, :b, :h, :c)", row)
        _refused(engine, "REPLACE INTO log_checkpoints VALUES (4, :h, 'n', :c)", row)
    else:
        _refused(
            engine,
            "INSERT INTO log_entries VALUES (0, :k, :b, :h, :c) ON CONFLICT (seq) DO UPDATE SET kind = excluded.kind",
            row,
        )
    assert _row_zero(engine) == before


def test_postgres_refuses_truncate_even_in_replica_mode(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE and replication roles are PostgreSQL's")
    _built(engine, 4)
    _refused(engine, "TRUNCATE log_entries")
    _refused(engine, "TRUNCATE log_checkpoints")
    for statement in ("UPDATE log_entries SET kind = 'x'", "DELETE FROM log_entries", "TRUNCATE log_entries"):
        with engine.connect() as conn:
            conn.exec_driver_sql("SET session_replication_role = replica")
            with pytest.raises(DBAPIError, match="append-only"):
                conn.exec_driver_sql(statement)
            conn.rollback()
    with engine.begin() as conn:
        assert Ledger(engine, SIGNER).verify(conn).size == 4


def test_app_role_grants_are_insert_and_select_only() -> None:
    statements = log.grant_app_role_ddl("publisher_app")
    assert 'GRANT SELECT, INSERT ON log_entries, log_checkpoints, log_tiles TO "publisher_app"' in statements
    assert 'REVOKE ALL ON log_entries, log_checkpoints, log_tiles, subject_keys FROM "publisher_app"' in statements
    assert not any("UPDATE" in s and ("log_entries" in s or "log_tiles" in s) for s in statements)
    with pytest.raises(InvalidInput):
        log.grant_app_role_ddl("app; DROP TABLE log_entries")


def test_concurrent_appends_stay_dense(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the embedded SQLite store has one daemon per file")
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        ledger = Ledger(engine, SIGNER)  # one Ledger per process/thread
        try:
            for i in range(15):
                with engine.begin() as conn:
                    ledger.append(conn, log.POST_PUBLISHED, {"writer": k, "i": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        ledger.checkpoint(conn)
        assert ledger.verify(conn).size == 60


def test_an_append_waiting_for_the_log_reads_the_head_that_committed_meanwhile(engine: Engine) -> None:
    """An append takes the log lock and reads the head in one round trip (db.read_after_lock);
    waiting behind another append, it must see that one's entry once it commits and take the
    next seq (a head read from before the wait would reuse the seq and fail)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the embedded SQLite store has one daemon per file")
    first, second = Ledger(engine, SIGNER), Ledger(engine, SIGNER)
    with engine.begin() as conn:
        _fill(second, conn, 3)  # `second` has read the head: it has something to be stale about
    errors: list[BaseException] = []
    got: list[int] = []

    def waiting_append() -> None:
        try:
            with engine.begin() as conn:
                got.append(second.append(conn, log.POST_PUBLISHED, {"n": "second"}).seq)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with engine.begin() as conn:
        assert first.append(conn, log.POST_PUBLISHED, {"n": "first"}).seq == 3
        waiter = threading.Thread(target=waiting_append)
        waiter.start()
        wait_for_a_waiting_advisory_lock(engine)
    waiter.join(10)
    assert errors == [] and got == [4]
    with engine.begin() as conn:
        assert Ledger(engine, SIGNER).verify(conn).size == 5


# ---------------------------------------------------------------- crypto-shredding


def test_erase_shreds_one_subject_and_the_log_still_verifies(engine: Engine) -> None:
    ledger = Ledger(engine, SIGNER)
    with engine.begin() as conn:
        amelia, ben = ledger.subject_ref(conn, "subject-1"), ledger.subject_ref(conn, "subject-2")
        assert ledger.subject_ref(conn, "subject-1") == amelia != ben
        sealed_a = ledger.seal(conn, amelia, {"name": "Amelia S.", "year": 5})
        sealed_b = ledger.seal(conn, ben, {"name": "Ben T."})
        ledger.append(conn, log.CONSENT_GRANTED, {"subject": amelia, "pii": sealed_a})
        ledger.append(conn, log.CONSENT_GRANTED, {"subject": ben, "pii": sealed_b})
        ledger.checkpoint(conn)
    with engine.begin() as conn:
        assert ledger.open(conn, amelia, sealed_a) == {"name": "Amelia S.", "year": 5}
        with pytest.raises(LedgerError):
            ledger.open(conn, ben, sealed_a)  # the AAD binds the ref
        assert ledger.erase(conn, amelia)
        ledger.append(conn, log.SUBJECT_ERASED, {"subject": amelia})
        ledger.checkpoint(conn)
    with engine.begin() as conn:
        assert ledger.open(conn, amelia, sealed_a) is None
        assert ledger.open(conn, ben, sealed_b) == {"name": "Ben T."}
        assert ledger.verify(conn).size == 3
        assert b"Amelia" not in b"".join(e.raw for e in ledger.entries(conn))
        assert ledger.subject_ref(conn, "subject-1") != amelia  # a new, unlinkable pseudonym


def test_commit_text_hides_and_binds_the_text() -> None:
    commitment = log.commit_text("Well done Amelia S. in Year 5")
    assert set(commitment) == {"salt", "sha256"}
    assert log.check_text_commit("Well done Amelia S. in Year 5", commitment)
    assert not log.check_text_commit("Well done Amelia S. in Year 6", commitment)
    assert log.commit_text("same")["sha256"] != log.commit_text("same")["sha256"]


# ---------------------------------------------------------------- proofs


def test_prove_gives_an_offline_verifiable_tlog_proof(engine: Engine) -> None:
    ledger = _built(engine, 11)
    with engine.begin() as conn:
        proof = ledger.prove(conn, 7)
    proven = verify_entry_proof(proof, SIGNER.verifier.vkey)  # nothing but text and vkey
    assert (proven.seq, proven.kind, proven.checkpoint.size) == (7, log.POST_PUBLISHED, 11)
    assert proven.body["post"] == "post:7"
    header, extra_line, *rest = proof.split("\n")
    body = base64.b64decode(extra_line.removeprefix("extra "))
    assert canonical.parse_object(body)["seq"] == 7
    for i in range(len(body)):
        changed = bytearray(body)
        changed[i] ^= 0x01
        forged = "\n".join([header, "extra " + base64.b64encode(bytes(changed)).decode(), *rest])
        with pytest.raises(LedgerError):
            verify_entry_proof(forged, SIGNER.verifier.vkey)
    other = NoteSigner(SIGNER.name, Ed25519PrivateKey.generate())
    with pytest.raises(LedgerError):
        verify_entry_proof(proof, other.verifier.vkey)


def test_prove_needs_a_covering_checkpoint(engine: Engine) -> None:
    ledger = _built(engine, 4)
    with engine.begin() as conn:
        ledger.append(conn, log.TAKEN_DOWN, {"post": "post:1"})
        with pytest.raises(LedgerError, match="not covered"):
            ledger.prove(conn, 4)
        proofs = ledger.prove_many(conn, [0, 3])
    assert {verify_entry_proof(p, SIGNER.verifier).seq for p in proofs.values()} == {0, 3}


def test_an_append_on_a_connection_without_a_transaction_is_rolled_back_with_it(tmp_path: Path) -> None:
    """Appends talk to the driver directly; they must still join SQLAlchemy's (auto)begun
    transaction, not autocommit under the project's SQLite engine (isolation_level None)."""
    from publisher.store import db

    engine = db.make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.begin() as conn:
        install(conn)
    ledger = Ledger(engine)
    with engine.begin() as conn:
        ledger.append(conn, log.TAKEN_DOWN, {"n": 0})
    with engine.connect() as conn:  # the ledger's frontier is warm: only driver-level statements now
        ledger.append(conn, log.TAKEN_DOWN, {"n": 1})
        conn.rollback()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM log_entries")).scalar() == 1
    engine.dispose()
