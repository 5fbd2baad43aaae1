"""Gather everything held about one subject into the SAR document (the content of sar.json).

Read-only: the register (posts featuring them, deliveries, approvals, takedowns, consent,
requests) and the log (every entry that names their pseudonym, with their sealed fields
opened). Other people are redacted (``publisher.sar.redact``); an image in which another
person appears is marked for redaction review, never shown with that person identified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.domain.gate import named_subjects
from publisher.ledger.log import Entry
from publisher.sar import notice
from publisher.sar.models import SarRequestRow, TakedownRow
from publisher.sar.redact import Redactor, own_terms
from publisher.store import models as m
from publisher.store import repo

if TYPE_CHECKING:
    from publisher.service import Service

SCHEMA_ID = "trust-publisher/sar@1"


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def proof_name(seq: int) -> str:
    return f"proofs/{seq:09d}.tlog-proof"


@dataclass
class Gathered:
    """The document, the media files to copy (sha256 -> (source, pack path)), the log seqs."""

    doc: dict[str, Any]
    media: dict[str, tuple[Path, str]] = field(default_factory=dict)
    seqs: list[int] = field(default_factory=list)


def _subject(row: m.SubjectRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": "" if row.erased else row.display_name,
        "aliases": [] if row.erased else list(row.aliases or []),
        "kind": row.kind,
        "school": row.school_id,
        "erased": row.erased,
    }


def _requests(s: Session, subject_id: str) -> list[dict[str, Any]]:
    q = select(SarRequestRow).where(SarRequestRow.subject_id == subject_id).order_by(SarRequestRow.received)
    return [
        {
            "id": r.id,
            "requester": r.requester,
            "received": r.received.isoformat(),
            "due": r.due.isoformat(),
            "extension_months": r.extension_months,
            "extension_reason": r.extension_reason,
            "status": r.status,
        }
        for r in s.scalars(q)
    ]


def _consent(rows: list[m.ConsentEventRow]) -> list[dict[str, Any]]:
    return [
        {
            "platform": r.platform,
            "scope": r.scope,
            "action": r.action,
            "evidence": r.evidence,
            "at": iso(r.at),
            "by": r.actor,
            "expires": r.expires.isoformat() if r.expires else None,
        }
        for r in rows
    ]


def _relied_on(consents: list[m.ConsentEventRow], platform: str, scopes: list[str], at: datetime | None) -> list[Any]:
    """For each scope, the consent event in force at ``at`` (the grant the post relied on)."""
    out: list[dict[str, Any]] = []
    for scope in scopes:
        found = None
        for c in consents:
            if c.platform == platform and c.scope == scope and (at is None or c.at <= at):
                found = c
        if found is None:
            out.append({"scope": scope, "action": "missing"})
        else:
            out.append({"scope": scope, **_consent([found])[0]})
    return out


class Collector:
    """Builds one subject's document inside the caller's session."""

    def __init__(self, service: Service, s: Session, row: m.SubjectRow) -> None:
        self.service = service
        self.s = s
        self.row = row
        self.consents = list(
            s.scalars(
                select(m.ConsentEventRow)
                .where(m.ConsentEventRow.subject_id == row.id)
                .order_by(m.ConsentEventRow.at, m.ConsentEventRow.id)
            )
        )
        self.redactor = Redactor(own=own_terms(row.display_name, row.aliases or []))
        self.out = Gathered({})

    def gather(self) -> Gathered:
        erased = self.row.erased
        posts = [] if erased else self._posts()
        entries = [] if erased else self._entries()
        self.out.doc = {
            "schema": SCHEMA_ID,
            "generated_at": iso(self.service.now()),
            "controller": notice.controller(self.service.config, self.row.school_id),
            "subject": _subject(self.row),
            "requests": _requests(self.s, self.row.id),
            "searched": notice.SEARCHED,
            "posts": posts,
            "consent_history": [] if erased else _consent(self.consents),
            "log": {"origin": self.service.config.log_origin, "entries": entries},
            "information": notice.information(self.service.config),
            "redactions": self.redactor.count,
        }
        return self.out

    # -- posts ---------------------------------------------------------------------------
    def _posts(self) -> list[dict[str, Any]]:
        q = (
            select(m.PostRow, m.PostSubjectRow)
            .join(m.PostSubjectRow, m.PostSubjectRow.post_id == m.PostRow.id)
            .where(m.PostSubjectRow.subject_id == self.row.id)
            .order_by(m.PostRow.scheduled_at, m.PostRow.id)
        )
        rows = [(r[0], r[1]) for r in self.s.execute(q)]
        declared = {post.id for post, _ in rows}
        me = {self.row.id: repo.subject(self.row)}
        for post in self.s.scalars(select(m.PostRow).order_by(m.PostRow.scheduled_at, m.PostRow.id)):
            if post.id not in declared and named_subjects(post.text, me):  # named, not declared
                rows.append((post, m.PostSubjectRow(post_id=post.id, subject_id=self.row.id, image=False, name=True)))
        rows.sort(key=lambda r: (r[0].scheduled_at, r[0].id))
        for post, _ in rows:
            self._know_others(post)
        return [self._post(post, mine) for post, mine in rows]

    def _know_others(self, post: m.PostRow) -> None:
        """Teach the redactor everyone else featured in, or named by, this post."""
        others = {f.subject_id for f in repo.post_featured(self.s, post.id)} - {self.row.id}
        everyone = repo.trust_subjects(self.s)
        others |= {x.id for x in named_subjects(post.text, everyone)} - {self.row.id}
        for sid in sorted(others):
            other = self.s.get(m.SubjectRow, sid)
            if other is not None:
                self.redactor.add(other.id, other.display_name, other.aliases or [])

    def _post(self, post: m.PostRow, mine: m.PostSubjectRow) -> dict[str, Any]:
        featured = repo.post_featured(self.s, post.id)
        others = [f for f in featured if f.subject_id != self.row.id]
        in_image = [f for f in others if f.image]
        scopes = [sc for sc, on in (("image", mine.image), ("name", mine.name)) if on]
        text = self.redactor.text(post.text)
        approval = repo.latest_approval(self.s, post.id)
        return {
            "id": post.id,
            "status": post.status,
            "author": post.author,
            "created_at": iso(post.created_at),
            "scheduled_at": iso(post.scheduled_at),
            "text": text,
            "text_redacted": text != post.text,
            "featured_as": scopes,
            "others_featured": len(others),
            "others_in_images": len(in_image),
            "media": self._media(post.id, mine.image, bool(in_image)),
            "approval": None
            if approval is None
            else {"approver": approval.approver, "approved_at": iso(approval.approved_at), "key_id": approval.key_id},
            "deliveries": self._deliveries(post.id, scopes),
            "takedowns": self._takedowns(post.id),
        }

    def _media(self, post_id: str, shown: bool, others: bool) -> list[dict[str, Any]]:
        items = []
        for row in repo.post_media(self.s, post_id):
            ext = "jpg" if row.mime == "image/jpeg" else "png"
            name = f"media/{row.sha256}.{ext}"
            self.out.media[row.sha256] = (repo.media_file(self.service.config.media_dir, row), name)
            note = notice.OTHERS_IN_IMAGE if others else ""
            items.append(
                {
                    "sha256": row.sha256,
                    "file": name,
                    "mime": row.mime,
                    "bytes": row.size,
                    "width": row.width,
                    "height": row.height,
                    "features_subject": shown,
                    "others_appear": others,
                    "redaction_review": others,
                    "note": note,
                }
            )
        return items

    def _deliveries(self, post_id: str, scopes: list[str]) -> list[dict[str, Any]]:
        q = select(m.DeliveryRow).where(m.DeliveryRow.post_id == post_id).order_by(m.DeliveryRow.account)
        out = []
        for d in self.s.scalars(q):
            account = self.s.get(m.AccountRow, d.account)
            platform = account.platform if account else ""
            went_live = d.published_at is not None
            out.append(
                {
                    "account": d.account,
                    "platform": platform,
                    "handle": account.handle if account else "",
                    "status": d.status,
                    "platform_id": d.platform_id,
                    "url": d.url,
                    "published_at": iso(d.published_at),
                    "taken_down_at": iso(d.taken_down_at),
                    "findings": [self.redactor.value(f) for f in (d.findings or [])],
                    "consent_relied_on": _relied_on(self.consents, platform, scopes, d.published_at)
                    if went_live
                    else [],
                }
            )
        return out

    def _takedowns(self, post_id: str) -> list[dict[str, Any]]:
        q = select(TakedownRow).where(TakedownRow.post_id == post_id).order_by(TakedownRow.requested_at)
        return [
            {
                "id": t.id,
                "account": t.account,
                "platform": t.platform,
                "status": t.status,
                "reason": self.redactor.text(t.reason),
                "requested_by": self.redactor.text(t.requested_by),
                "requested_at": iso(t.requested_at),
                "done_at": iso(t.done_at),
            }
            for t in self.s.scalars(q)
        ]

    # -- the log -------------------------------------------------------------------------
    def _entries(self) -> list[dict[str, Any]]:
        audit = self.service.audit
        conn = self.s.connection()
        ref = audit.ref_of(conn, self.row.id)
        if ref is None:
            return []
        return [self._entry(e, opened) for e, opened in audit.entries_about(conn, ref)]

    def _entry(self, entry: Entry, opened: dict[str, Any] | None) -> dict[str, Any]:
        self.out.seqs.append(entry.seq)
        details = {k: v for k, v in entry.body.items() if k != "subjects"}
        return {
            "seq": entry.seq,
            "kind": entry.kind,
            "ts": iso(entry.created_at),
            "details": self.redactor.value(details),
            "about_you": None if opened is None else self.redactor.value(opened),
            "proof": proof_name(entry.seq),
        }


def gather(service: Service, s: Session, row: m.SubjectRow) -> Gathered:
    return Collector(service, s, row).gather()
