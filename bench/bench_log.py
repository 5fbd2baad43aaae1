"""Benchmark the tamper-evident log (publisher.ledger) against raw sqlite3 inserts.

    python3 bench/bench_log.py [--entries N] [--appends M] [--out bench/results_log.json]

Measures, on SQLite in WAL mode with synchronous=FULL:
  * appends/s through Ledger.append at 1 and 100 entries per transaction, beside a raw
    sqlite3 executemany of the same (pre-built) rows at the same batch sizes and durability;
  * the time to verify an N-entry log (default 1,000,000), as `publisher log verify` does it
    (a process per core from 100,000 entries) and with one process beside it; the log is built
    with batched inserts of the exact rows Ledger.append writes (entries, and a log_tiles row
    per 256 of them);
  * on that log, from processes that hold nothing cached: the first checkpoint, reloading the
    frontier (from the stored tiles), one inclusion proof; the proof's size and offline
    verification time.
Prints tables and writes the figures as JSON. No timed assertions.
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, create_engine, event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from publisher.ledger import canonical, log, merkle, rederive, tiles
from publisher.ledger.log import Ledger, install, verify_entry_proof
from publisher.ledger.note import NoteSigner

SIGNER = NoteSigner("trust.example/social-audit/v1", Ed25519PrivateKey.generate())
TS = "2026-11-24T09:00:00.000000Z"


def body(i: int) -> dict[str, Any]:
    return {
        "post": f"post:01JD{i:022d}",
        "rev": 1,
        "platforms": ["facebook", "instagram"],
        "platform_ids": {"facebook": f"1234_{i}"},
        "text_commit": "ab" * 32,
        "media_sha256": ["cd" * 32],
        "approval_sha256": "ef" * 32,
        "subjects": ["subj:" + "0" * 32],
        "salt": "01" * 16,
    }


def sqlite_engine(path: Path, synchronous: str = "FULL") -> Engine:
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute(f"PRAGMA synchronous={synchronous}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    with engine.begin() as conn:
        install(conn)
    return engine


def ledger_rate(directory: Path, count: int, batch: int) -> float:
    engine = sqlite_engine(directory / f"ledger-{batch}.db")
    ledger = Ledger(engine, SIGNER)
    start = time.perf_counter()
    for first in range(0, count, batch):
        with engine.begin() as conn:
            for i in range(first, min(first + batch, count)):
                ledger.append(conn, log.POST_PUBLISHED, body(i))
    elapsed = time.perf_counter() - start
    engine.dispose()
    return count / elapsed


def rows_of(first: int, end: int) -> tuple[list[tuple[Any, ...]], list[tuple[int, bytes]]]:
    """The log_entries rows [first, end) Ledger.append writes, and the log_tiles rows of the
    tiles they finish (``first`` on a tile boundary)."""
    rows = []
    for i in range(first, end):
        raw = canonical.encode_versioned({**body(i), "seq": i, "kind": log.POST_PUBLISHED, "ts": TS})
        rows.append((i, log.POST_PUBLISHED, raw, merkle.leaf_hash(raw), TS))
    hashes = tiles.tile_hashes(r[3] for r in rows)
    return rows, [(first // tiles.TILE_SIZE + k, h) for k, h in enumerate(hashes)]


def raw_rate(directory: Path, count: int, batch: int) -> float:
    path = directory / f"raw-{batch}.db"
    sqlite_engine(path).dispose()  # same schema and triggers
    rows, tile_rows = rows_of(0, count)
    finished = {(seq + 1) * tiles.TILE_SIZE - 1: (seq, h) for seq, h in tile_rows}  # last entry -> tile
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    start = time.perf_counter()
    for first in range(0, count, batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO log_entries VALUES (?, ?, ?, ?, ?)", rows[first : first + batch])
        done = [finished[i] for i in range(first, min(first + batch, count)) if i in finished]
        if done:
            db.executemany("INSERT INTO log_tiles (seq, hash) VALUES (?, ?)", done)
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return count / elapsed


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def big_log(directory: Path, entries: int) -> dict[str, Any]:
    engine = sqlite_engine(directory / "big.db", synchronous="OFF")  # build fast; verify reads only
    ledger = Ledger(engine, SIGNER)
    build_s, _ = timed(lambda: _build(engine, ledger, entries))
    with engine.begin() as conn:
        checkpoint_s, _ = timed(lambda: ledger.checkpoint(conn))
    fresh = Ledger(engine, SIGNER)  # no cache: what 'publisher log verify' does
    with engine.begin() as conn:
        verify_s, report = timed(lambda: fresh.verify(conn))  # default: a process per core
        one_s, _ = timed(lambda: Ledger(engine, SIGNER).verify(conn, processes=1))
        prove_s, proof = timed(lambda: fresh.prove(conn, entries // 3))
        reload_s, _ = timed(lambda: fresh.head(conn))
    runs = 200
    check_s, _ = timed(lambda: [verify_entry_proof(proof, SIGNER.verifier.vkey) for _ in range(runs)])
    hashes = len(merkle.inclusion_ranges(entries // 3, entries))
    engine.dispose()
    return {
        "entries": report.size,
        "build_s": round(build_s, 2),
        "checkpoint_s": round(checkpoint_s, 3),
        "verify_s": round(verify_s, 2),
        "verify_processes": rederive.processes_for(report.size),
        "verify_one_process_s": round(one_s, 2),
        "frontier_reload_s": round(reload_s, 3),
        "prove_s": round(prove_s, 3),
        "proof_hashes": hashes,
        "proof_hash_bytes": hashes * merkle.HASH_SIZE,
        "proof_text_bytes": len(proof.encode()),
        "proof_verify_us": round(check_s / runs * 1e6, 1),
    }


def _build(engine: Engine, ledger: Ledger, entries: int) -> None:
    """Write the entries and tiles exactly as Ledger.append would (same canonical bodies, leaf
    hashes, tiles, dense seq and triggers), in large executemany batches: building is not
    what is measured."""
    raw_conn = engine.raw_connection()
    try:
        db = raw_conn.driver_connection
        assert db is not None
        step = 256 * tiles.TILE_SIZE  # batches end on tile boundaries
        for first in range(0, entries, step):
            rows, tile_rows = rows_of(first, min(first + step, entries))
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO log_entries VALUES (?, ?, ?, ?, ?)", rows)
            db.executemany("INSERT INTO log_tiles (seq, hash) VALUES (?, ?)", tile_rows)
            db.execute("COMMIT")
    finally:
        raw_conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="size of the log to verify")
    parser.add_argument("--appends", type=int, default=2_000, help="entries per append-rate run")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_log.json"))
    args = parser.parse_args()
    results: dict[str, Any] = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        rows = []
        for batch in (1, 100):
            ours = ledger_rate(directory, args.appends, batch)
            base = raw_rate(directory, args.appends, batch)
            rows.append({"batch": batch, "ledger_per_s": round(ours), "raw_per_s": round(base)})
        results["appends_wal_full"] = rows
        print(f"Appends/s, SQLite WAL synchronous=FULL, {args.appends} entries per run")
        print(f"{'per txn':>8} | {'Ledger.append':>13} | {'raw executemany':>15} | {'ledger/raw':>10}")
        for row in rows:
            ratio = row["ledger_per_s"] / row["raw_per_s"]
            print(f"{row['batch']:>8} | {row['ledger_per_s']:>13,} | {row['raw_per_s']:>15,} | {ratio:>10.2f}")
        big = big_log(directory, args.entries)
        results["big_log"] = big
    print()
    print(f"Log of {big['entries']:,} entries (built in {big['build_s']} s with batched raw inserts of the same rows)")
    keys = ("checkpoint_s", "verify_s", "verify_processes", "verify_one_process_s", "frontier_reload_s", "prove_s")
    for key in (*keys, "proof_verify_us"):
        print(f"  {key:<20} {big[key]}")
    print(
        f"  inclusion proof      {big['proof_hashes']} hashes = {big['proof_hash_bytes']} B"
        f" (tlog-proof text {big['proof_text_bytes']} B incl. entry and checkpoint)"
    )
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
