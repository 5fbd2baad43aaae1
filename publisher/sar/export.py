"""`publisher sar export`: write one subject's pack, then record the answer in the log.

The pack is built in a temporary folder beside ``out`` and moved into place in the same
transaction that logs ``sar_answered``; a failure at any step leaves no folder and no entry.
A fresh checkpoint is signed first so every entry about the subject has a proof against it.
Nothing else in the store changes (the subject's open requests are marked answered).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from publisher.errors import InvalidInput, UsageError
from publisher.ledger import log as kinds
from publisher.ledger.note import Checkpoint, NoteSigner, split_note
from publisher.sar import collect, render
from publisher.sar.models import SarRequestRow
from publisher.sar.requests import resolve_subject
from publisher.sar.schema import SCHEMA
from publisher.store import db

if TYPE_CHECKING:
    from publisher.service import Service

VERIFY_TEXT = """How to check the proofs in this folder
======================================

Each .tlog-proof file shows that one entry of the school's publication log is included in
the log exactly as it was signed (a C2SP tlog-proof: the entry, a Merkle inclusion proof
and the signed checkpoint {size}). Checking needs only this folder and the log's public key
(the "vkey"). Get the vkey from the school or the Trust, not from this pack: the copy in
log.vkey is for comparison only. The school's vkey is:

    {vkey}

With trust-publisher installed (pip install trust-publisher), run, from this folder:

    publisher log verify-proof *.tlog-proof --vkey "{vkey}"

Each file prints OK with its entry number, or the command names the file that fails and
exits non-zero. The entries name people only by random pseudonyms; personal details are
encrypted, and other people's are not readable from this pack.
"""


@dataclass(frozen=True)
class Exported:
    out: Path
    subject_id: str
    posts: int
    entries: int
    media: int
    checkpoint_size: int
    redaction_review: int


def _check_out(out: Path) -> Path:
    out = out.expanduser().absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} already exists and is not empty: give a new or empty folder for the pack")
    if not out.parent.is_dir():
        raise InvalidInput(f"The folder {out.parent} does not exist: create it first")
    return out


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _copy_media(tmp: Path, media: dict[str, tuple[Path, str]]) -> None:
    for sha, (source, name) in sorted(media.items()):
        try:
            data = source.read_bytes()
        except OSError:
            raise UsageError(f"The stored copy of image {sha[:12]} is missing: restore the media folder") from None
        if hashlib.sha256(data).hexdigest() != sha:
            raise UsageError(f"The stored copy of image {sha[:12]} was altered: restore it from backup")
        _write(tmp / name, data)


def _fill(service: Service, tmp: Path, got: collect.Gathered, proofs: dict[int, str], note: str) -> None:
    vkey = service.config.log_vkey or service.log_signer().verifier.vkey
    text, _ = split_note(note)
    checkpoint = Checkpoint.parse(text)
    got.doc["log"]["vkey"] = vkey
    got.doc["log"]["checkpoint"] = {
        "size": checkpoint.size,
        "root_hash": base64.b64encode(checkpoint.root_hash).decode(),
        "note": note,
    }
    _copy_media(tmp, got.media)
    for seq, proof in proofs.items():
        _write(tmp / collect.proof_name(seq), proof.encode("utf-8"))
    _write(tmp / "proofs" / "VERIFY.txt", VERIFY_TEXT.format(size=checkpoint.size, vkey=vkey).encode("utf-8"))
    _write(tmp / "proofs" / "log.vkey", (vkey + "\n").encode("ascii"))
    _write(tmp / "proofs" / "checkpoint.txt", note.encode("utf-8"))
    _write(tmp / "sar.json", (json.dumps(got.doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    _write(tmp / "sar.schema.json", (json.dumps(SCHEMA, indent=2) + "\n").encode("utf-8"))
    _write(tmp / "index.html", render.render(got.doc).encode("utf-8"))


def _gather(service: Service, subject_id: str, signer: NoteSigner) -> tuple[collect.Gathered, dict[int, str], str]:
    """Sign a checkpoint for this answer and gather against it in one transaction, so no entry
    appended meanwhile can fall outside the checkpoint the proofs are made for."""
    with db.transaction(service.engine) as s:
        service.audit.ledger.checkpoint(s.connection(), signer)
        row = resolve_subject(s, subject_id)
        got = collect.gather(service, s, row)
        conn = s.connection()
        latest = service.audit.ledger.latest_checkpoint(conn)
        if latest is None:
            raise UsageError("The log has no checkpoint: run 'publisher log checkpoint'")
        proofs = service.audit.ledger.prove_many(conn, got.seqs) if got.seqs else {}
        return got, proofs, latest[1]


def export(service: Service, subject: str, out: Path) -> Exported:
    """Write the pack for ``subject`` (id or name) to the new or empty folder ``out``."""
    out = _check_out(out)
    with db.transaction(service.engine) as s:
        subject_id = resolve_subject(s, subject).id
    got, proofs, note = _gather(service, subject_id, service.log_signer())
    tmp = Path(tempfile.mkdtemp(prefix=".sar-", dir=out.parent))
    try:
        _fill(service, tmp, got, proofs, note)
        _answer(service, got.doc, tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    posts = got.doc["posts"]
    return Exported(
        out,
        subject_id,
        len(posts),
        len(got.seqs),
        len(got.media),
        got.doc["log"]["checkpoint"]["size"],
        sum(1 for p in posts for item in p["media"] if item["redaction_review"]),
    )


def _answer(service: Service, doc: dict[str, Any], tmp: Path, out: Path) -> None:
    """Log sar_answered, mark open requests answered and move the pack into place, as one."""
    subject = doc["subject"]
    moved = False
    try:
        with db.transaction(service.engine) as s:
            rows = list(
                s.scalars(
                    select(SarRequestRow).where(
                        SarRequestRow.subject_id == subject["id"], SarRequestRow.status == "open"
                    )
                )
            )
            ref = None if subject["erased"] else service.audit.ref_of(s.connection(), subject["id"])
            size = doc["log"]["checkpoint"]["size"]
            body = {
                "subject": ref,
                "requests": [r.id for r in rows],
                "entries": [e["seq"] for e in doc["log"]["entries"]],
                "checkpoint_size": size,
                "actor": service.actor,
            }
            personal = {subject["id"]: {"requesters": [r.requester for r in rows]}} if ref else None
            service.record(s, kinds.SAR_ANSWERED, body, personal)
            for r in rows:
                r.status, r.answered_at, r.answered_by, r.answer_checkpoint = (
                    "answered",
                    service.now(),
                    service.actor,
                    size,
                )
            if out.exists():
                out.rmdir()  # empty, checked before
            os.rename(tmp, out)
            moved = True
    except BaseException:
        if moved:
            shutil.rmtree(out, ignore_errors=True)
        raise
