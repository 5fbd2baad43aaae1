"""Subject access: export one subject's pack from a big log, beside a full scan of the log.

    python3 bench/bench_sar.py [--entries 1000000] [--subjects 10000] [--per-subject 20] [--out FILE]

The store (SQLite, WAL, synchronous=FULL as the project runs it) gets `--subjects` register
subjects, each with a pseudonym and key in subject_keys, and a log of `--entries` entries in
which every subject is named, with sealed personal fields, in `--per-subject` entries spread
over the whole log (the rest name nobody), plus the log_subject_index rows Audit.record writes.
The log is built with batched raw inserts of exactly the rows Ledger.append writes (canonical
body with seq, kind, ts and subjects; leaf hash; a log_tiles row per 256 entries), as
bench/bench_log.py does: building is not timed. Measured:
  * export: `publisher.sar.export.export` for one subject, from a fresh Service (as the
    `publisher sar export` command runs it: it signs a checkpoint first, which loads the log's
    frontier, then gathers, proves each entry and writes the pack);
  * baseline: reading that subject's entries by a full scan of log_entries (a byte search for
    the pseudonym in every body, then decoding the hits): what finding them costs without the
    subject index.
Prints a table; no assertions.
"""

from __future__ import annotations

import argparse
import base64
import secrets
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # also puts the project on sys.path

from publisher import config as cfgmod
from publisher.ledger import canonical, merkle, tiles
from publisher.ledger import log as kinds
from publisher.ledger.log import format_ts
from publisher.service import Service

TS = "2026-11-24T09:00:00.000000Z"
TARGET_S = 2.0
CONFIG = """[publisher]
data_dir = "var"
timezone = "Europe/London"

[log]
origin = "bench.invalid/log"

[[schools]]
id = "stmarys"
name = "St Mary's"
"""


def _seal(key: bytes, ref: str, fields: dict[str, Any]) -> str:
    """Exactly Ledger.seal, without a database round trip per entry."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from publisher.ledger.log import _SEAL_CONTEXT

    nonce = secrets.token_bytes(12)
    sealed = ChaCha20Poly1305(key).encrypt(nonce, canonical.encode(dict(fields)), _SEAL_CONTEXT + ref.encode())
    return base64.b64encode(nonce + sealed).decode("ascii")


def build(db_path: Path, entries: int, subjects: int, per_subject: int) -> tuple[str, str]:
    """The register subjects, subject keys, log and index; returns (subject id, its ref)."""
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    now = datetime.now(UTC)
    ids = [f"S-BENCH{i:06d}" for i in range(subjects)]
    refs = ["subj:" + secrets.token_hex(16) for _ in range(subjects)]
    keys = [secrets.token_bytes(32) for _ in range(subjects)]
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO subjects (id, school_id, kind, display_name, aliases, never_publish, never_publish_reason,"
        " erased, created_at, created_by) VALUES (?, 'stmarys', 'pupil', ?, '[]', 0, '', 0, ?, 'bench')",
        [(sid, f"Pupil Number{i}", now.isoformat(" ")) for i, sid in enumerate(ids)],
    )
    db.executemany(
        "INSERT INTO subject_keys VALUES (?, ?, ?, ?)",
        [(refs[i], ids[i], keys[i], format_ts(now)) for i in range(subjects)],
    )
    db.execute("COMMIT")
    named = subjects * per_subject
    stride = max(entries // max(named, 1), 1)  # every stride-th entry names one subject
    chunk = 200 * tiles.TILE_SIZE  # whole tiles per transaction
    for first in range(0, entries, chunk):
        rows, index = [], []
        for seq in range(first, min(first + chunk, entries)):
            body: dict[str, Any] = {
                "post": f"P-{seq:010d}",
                "delivery": f"D-{seq:010d}",
                "account": "stmarys-facebook",
                "platform": "facebook",
                "platform_id": f"1234_{seq}",
                "url": f"https://facebook.com/1234_{seq}",
                "jti": "ab" * 16,
                "manifest_sha256": "cd" * 32,
                "media_sha256": ["ef" * 32],
                "attempts": 1,
                "reconciled": False,
                "subjects": [],
            }
            k = seq // stride
            if seq % stride == 0 and k < named:
                who = k % subjects
                fields = {"name": f"Pupil Number{who}", "caption": f"Sports day, post {seq}", "scopes": ["image"]}
                body["subjects"] = [{"ref": refs[who], "sealed": _seal(keys[who], refs[who], fields)}]
                index.append((refs[who], seq))
            raw = canonical.encode_versioned({**body, "seq": seq, "kind": kinds.POST_PUBLISHED, "ts": TS})
            rows.append((seq, kinds.POST_PUBLISHED, raw, merkle.leaf_hash(raw), TS))
        hashes = tiles.tile_hashes(r[3] for r in rows)
        tile_rows = [(first // tiles.TILE_SIZE + k, h) for k, h in enumerate(hashes)]
        db.execute("BEGIN")
        db.executemany("INSERT INTO log_entries VALUES (?, ?, ?, ?, ?)", rows)
        db.executemany("INSERT INTO log_tiles (seq, hash) VALUES (?, ?)", tile_rows)
        db.executemany("INSERT INTO log_subject_index (ref, seq) VALUES (?, ?)", index)
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return ids[0], refs[0]


def scan(db_path: Path, ref: str) -> tuple[float, int]:
    """The subject's entries found by reading every body (no index)."""
    db = sqlite3.connect(db_path)
    needle = ref.encode()
    t = time.perf_counter()
    found = []
    for seq, raw in db.execute("SELECT seq, body FROM log_entries ORDER BY seq"):
        if needle in raw:
            body = canonical.parse_object(raw)
            found.append((seq, body))
    elapsed = time.perf_counter() - t
    db.close()
    return elapsed, len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--per-subject", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_sar.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sar-") as tmp:
        base = Path(tmp)
        path = base / "config.toml"
        path.write_text(CONFIG, encoding="utf-8")
        cfg = cfgmod.load(path)
        (cfg.data_dir / "keys").mkdir(parents=True)
        first = Service.open(cfg, "DFO", migrate=True)
        first.setup()
        first.close()
        t = time.perf_counter()
        subject_id, ref = build(cfg.data_dir / "publisher.db", args.entries, args.subjects, args.per_subject)
        build_s = time.perf_counter() - t
        svc = Service.open(cfgmod.load(path), "DFO")  # fresh: nothing cached, as a CLI run
        try:
            from publisher.sar.export import export

            t = time.perf_counter()
            done = export(svc, subject_id, base / "pack")
            export_s = time.perf_counter() - t
        finally:
            svc.close()
        scan_s, scanned = scan(cfg.data_dir / "publisher.db", ref)
    r = {
        "entries": args.entries,
        "subjects": args.subjects,
        "entries_about_subject": done.entries,
        "build_s": round(build_s, 1),
        "export_s": round(export_s, 3),
        "scan_s": round(scan_s, 3),
        "scan_found": scanned,
        "checkpoint_size": done.checkpoint_size,
        "target_pass": export_s < TARGET_S,
    }
    print(f"\nSAR export: one subject of {args.subjects:,}, log of {args.entries:,} entries (built in {build_s:.0f} s)")
    print(f"{'measure':<52} {'seconds':>8}  target (< {TARGET_S:g} s)")
    print(
        f"{'export (fresh Service: checkpoint, gather, proofs, pack)':<52} {export_s:>8.3f}  {c.verdict(export_s < TARGET_S)}"
    )
    print(f"{'baseline: full scan of the log for the pseudonym':<52} {scan_s:>8.3f}")
    print(f"  entries about the subject: export {done.entries}, scan {scanned}")
    c.write_out(args.out, r)


if __name__ == "__main__":
    main()
