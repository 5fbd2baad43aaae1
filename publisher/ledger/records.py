"""What goes into the log, and how personal data is kept out of it.

Every entry is `body` (no personal data: ids, codes, hashes, platform references) plus a
list of the subjects it concerns, each as a random pseudonym with that subject's personal
fields sealed under their own key. Erasing a subject deletes the key: their fields become
unreadable and every leaf, checkpoint and proof still verifies.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from publisher.ledger.log import Entry, Ledger
from publisher.ledger.tables import log_subject_index, subject_keys


class Audit:
    """The project's one way of writing to the log. Thread-safe within a process."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()

    def record(
        self,
        conn: Connection,
        kind: str,
        body: Mapping[str, Any],
        personal: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Entry:
        """Append one entry inside the caller's transaction.

        personal maps subject id -> that subject's personal fields (name, caption, evidence...);
        they are sealed under the subject's key and only the pseudonym appears in clear.
        """
        with self._lock:
            subjects = []
            for subject_id in sorted(personal or {}):
                ref = self.ledger.subject_ref(conn, subject_id)
                fields = dict((personal or {})[subject_id])
                subjects.append({"ref": ref, "sealed": self.ledger.seal(conn, ref, fields) if fields else ""})
            entry = self.ledger.append(conn, kind, {**body, "subjects": subjects})
        if subjects:
            conn.execute(insert(log_subject_index), [{"ref": s["ref"], "seq": entry.seq} for s in subjects])
        return entry

    def ref_of(self, conn: Connection, subject_id: str) -> str | None:
        """The subject's pseudonym, or None if they never appeared or were erased."""
        q = select(subject_keys.c.ref).where(subject_keys.c.subject_id == subject_id)
        ref = conn.execute(q).scalar_one_or_none()
        return None if ref is None else str(ref)

    def entries_about(self, conn: Connection, ref: str) -> Iterator[tuple[Entry, dict[str, Any] | None]]:
        """Every entry mentioning ref, with that subject's fields opened (None once erased)."""
        seqs = [
            int(s)
            for s in conn.execute(
                select(log_subject_index.c.seq).where(log_subject_index.c.ref == ref).order_by(log_subject_index.c.seq)
            ).scalars()
        ]
        for entry in self.ledger.entries_at(conn, seqs):
            mine = next((s for s in entry.body.get("subjects", []) if s.get("ref") == ref), None)
            opened = self.ledger.open(conn, ref, mine["sealed"]) if mine and mine.get("sealed") else None
            yield entry, opened

    def erase(self, conn: Connection, subject_id: str) -> str | None:
        """Crypto-shred a subject; returns the pseudonym that was erased (None if never logged)."""
        ref = self.ref_of(conn, subject_id)
        if ref is not None:
            self.ledger.erase(conn, ref)
        return ref
