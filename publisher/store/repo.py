"""Reading and writing the register through SQLAlchemy; rows in, domain values out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Protocol, cast

from sqlalchemy import ColumnElement, Row, Table, and_, bindparam, literal_column, select, text, update
from sqlalchemy.orm import Session

from publisher.domain.approval import Signed
from publisher.domain.limits import Platform
from publisher.domain.model import (
    Account,
    ConsentAction,
    ConsentEvent,
    Featured,
    MediaRef,
    Post,
    Scope,
    Subject,
    SubjectKind,
)
from publisher.errors import NotFound
from publisher.store import models as m


def subject(row: m.SubjectRow) -> Subject:
    return Subject(
        id=row.id,
        school=row.school_id,
        kind=SubjectKind(row.kind),
        display_name=row.display_name,
        aliases=tuple(row.aliases or ()),
        never_publish=row.never_publish,
        never_publish_reason=row.never_publish_reason,
    )


def get_subject(s: Session, subject_id: str) -> m.SubjectRow:
    row = s.get(m.SubjectRow, subject_id)
    if row is None:
        raise NotFound("subject", subject_id)
    return row


def trust_subjects(s: Session) -> dict[str, Subject]:
    """Every subject in the Trust's register who has not been erased (all schools)."""
    rows = s.scalars(select(m.SubjectRow).where(m.SubjectRow.erased.is_(False)))
    return {r.id: subject(r) for r in rows}


@dataclass(frozen=True)
class Register:
    """What the gate reads about the whole Trust, as of one register version: every subject
    (for name screening), every consent event, every certificate and revocation. Every change
    to these bumps the version (Service.record for GATE_KINDS, Service.subject_add), so a
    snapshot is good for as long as the version stands."""

    version: int
    subjects: dict[str, Subject]
    consents: tuple[ConsentEvent, ...]
    certificates: tuple[Signed, ...]
    revocations: tuple[Signed, ...]
    paused: bool  # the emergency stop (pause and resume bump the version too)


def load_register(s: Session, version: int) -> Register:
    subjects = trust_subjects(s)
    return Register(
        version,
        subjects,
        tuple(consent_events(s, list(subjects))),
        tuple(certificates(s)),
        tuple(revocations(s)),
        control(s, "paused") == "yes",
    )


def consent_event(row: m.ConsentEventRow) -> ConsentEvent:
    return ConsentEvent(
        subject_id=row.subject_id,
        platform=Platform(row.platform),
        scope=Scope(row.scope),
        action=ConsentAction(row.action),
        at=row.at,
        expires=row.expires,
        evidence=row.evidence,
    )


def consent_events(s: Session, subject_ids: list[str] | None = None) -> list[ConsentEvent]:
    q = select(m.ConsentEventRow).order_by(m.ConsentEventRow.id)  # recorded order decides
    if subject_ids is not None:
        q = q.where(m.ConsentEventRow.subject_id.in_(subject_ids))
    return [consent_event(r) for r in s.scalars(q)]


def add_consent(
    s: Session,
    subject_id: str,
    platform: Platform,
    scope: Scope,
    action: ConsentAction,
    at: datetime,
    actor: str,
    evidence: str = "",
    expires: date | None = None,
) -> m.ConsentEventRow:
    row = m.ConsentEventRow(
        subject_id=subject_id,
        platform=platform.value,
        scope=scope.value,
        action=action.value,
        evidence=evidence,
        expires=expires,
        at=at,
        actor=actor,
    )
    s.add(row)
    s.flush()
    return row


def get_post(s: Session, post_id: str) -> m.PostRow:
    row = s.get(m.PostRow, post_id)
    if row is None:
        raise NotFound("post", post_id)
    return row


# Statements the publisher runs for every delivery, built once with bound parameters, on the
# tables (Core): an ORM statement costs about three times as much to run, and loading an ORM
# object more again (measured on SQLite: 35 us, 100 us, 230 us).
_POST_ID: Any = bindparam("post_id")
_POSTS: Final = cast(Table, m.PostRow.__table__)
_POST_ACCOUNTS_T: Final = cast(Table, m.PostAccountRow.__table__)
_POST_SUBJECTS_T: Final = cast(Table, m.PostSubjectRow.__table__)
_POST_MEDIA_T: Final = cast(Table, m.PostMediaRow.__table__)
_MEDIA_T: Final = cast(Table, m.MediaRow.__table__)
_ACCOUNTS_T: Final = cast(Table, m.AccountRow.__table__)
_APPROVALS_T: Final = cast(Table, m.ApprovalRow.__table__)


def one_of(column: ColumnElement[Any], values: tuple[str, ...]) -> ColumnElement[bool]:
    """``column IN ('a', 'b')`` with the project's own constants written into the SQL once, when
    the statement is compiled: an IN of bound values is expanded again at every execution
    (about 10 µs each; the daemon's budget query alone held five)."""
    if not all(re.fullmatch(r"[a-z_]+", v) for v in values):
        raise ValueError(f"one_of takes the project's status names, not {values!r}")
    return column.in_([literal_column(f"'{v}'") for v in values])


_DELIVERIES_T: Final = cast(Table, m.DeliveryRow.__table__)
_CONTROL_T: Final = cast(Table, m.ControlRow.__table__)

_LATEST: Final = _APPROVALS_T.c.id.desc()
_GATE_POST: Final = select(
    *(_POSTS.c[name] for name in ("id", "school_id", "author", "text", "scheduled_at", "status")),
    select(_APPROVALS_T.c.token)
    .where(_APPROVALS_T.c.post_id == _POSTS.c.id)
    .order_by(_LATEST)
    .limit(1)
    .scalar_subquery()
    .label("token"),
).where(_POSTS.c.id == _POST_ID)
_POST_ACCOUNTS: Final = (
    select(_POST_ACCOUNTS_T.c.account)
    .where(_POST_ACCOUNTS_T.c.post_id == _POST_ID)
    .order_by(_POST_ACCOUNTS_T.c.account)
)
_PUBLISHED_WITH: Final = and_(  # the delivery on that account, if live or taken down: its token's jti
    _DELIVERIES_T.c.post_id == _POST_ACCOUNTS_T.c.post_id,
    _DELIVERIES_T.c.account == _POST_ACCOUNTS_T.c.account,
    one_of(_DELIVERIES_T.c.status, ("live", "taken_down")),
    _DELIVERIES_T.c.jti != "",
)
_GATE_ACCOUNTS: Final = (
    select(_POST_ACCOUNTS_T.c.account, _ACCOUNTS_T.c.school_id, _ACCOUNTS_T.c.platform, _DELIVERIES_T.c.jti)
    .select_from(
        _POST_ACCOUNTS_T.outerjoin(_ACCOUNTS_T, _ACCOUNTS_T.c.name == _POST_ACCOUNTS_T.c.account).outerjoin(
            _DELIVERIES_T, _PUBLISHED_WITH
        )
    )
    .where(_POST_ACCOUNTS_T.c.post_id == _POST_ID)
    .order_by(_POST_ACCOUNTS_T.c.account)
)
_POST_FEATURED: Final = (
    select(_POST_SUBJECTS_T.c.subject_id, _POST_SUBJECTS_T.c.image, _POST_SUBJECTS_T.c.name)
    .where(_POST_SUBJECTS_T.c.post_id == _POST_ID)
    .order_by(_POST_SUBJECTS_T.c.subject_id)
)
_MEDIA_COLUMNS: Final = ("sha256", "mime", "size", "width", "height", "camera_make", "camera_model", "device_id")
_POST_MEDIA: Final = (
    select(*(_MEDIA_T.c[n] for n in _MEDIA_COLUMNS))
    .join(_POST_MEDIA_T, _POST_MEDIA_T.c.sha256 == _MEDIA_T.c.sha256)
    .where(_POST_MEDIA_T.c.post_id == _POST_ID)
    .order_by(_POST_MEDIA_T.c.position)
)
_LATEST_APPROVAL: Final = select(m.ApprovalRow).where(m.ApprovalRow.post_id == _POST_ID).order_by(_LATEST).limit(1)
_POST_PUBLISHED: Final = (  # on the table: an ORM update would look for loaded rows to refresh
    update(_POSTS).where(_POSTS.c.id == _POST_ID, _POSTS.c.status == "approved").values(status="published")
)


def mark_post_published(s: Session, post_id: str) -> None:
    """An approved post with a delivery live is published (one statement, no row loaded)."""
    s.execute(_POST_PUBLISHED, {"post_id": post_id})


def post_accounts(s: Session, post_id: str) -> list[str]:
    return list(s.scalars(_POST_ACCOUNTS, {"post_id": post_id}))


def post_featured(s: Session, post_id: str) -> Sequence[Any]:
    """Who the post features, by subject id: (subject_id, image, name) rows."""
    return s.execute(_POST_FEATURED, {"post_id": post_id}).all()


def post_media(s: Session, post_id: str) -> Sequence[Row[Any]]:
    """The post's media in order, as rows of _MEDIA_COLUMNS."""
    return s.execute(_POST_MEDIA, {"post_id": post_id}).all()


class PostColumns(Protocol):
    """What a Post is made of: a PostRow, or the row `gate_post` reads."""

    id: str
    school_id: str
    author: str
    text: str
    scheduled_at: datetime
    status: str


class GatePost(PostColumns, Protocol):
    token: str | None


def gate_post(s: Session, post_id: str) -> GatePost:
    """The post's columns and its latest approval's token (None if unapproved), in one read."""
    row = s.execute(_GATE_POST, {"post_id": post_id}).first()
    if row is None:
        raise NotFound("post", post_id)
    return cast(GatePost, row)


def gate_accounts(s: Session, post_id: str) -> tuple[dict[str, Account | None], frozenset[tuple[str, str]]]:
    """The post's accounts in name order, each as the register has it (None: not configured),
    and the approvals already used: (jti, account) of each delivery live or taken down (one
    delivery per post and account)."""
    accounts: dict[str, Account | None] = {}
    used = set()
    for name, school, platform, jti in s.execute(_GATE_ACCOUNTS, {"post_id": post_id}):
        accounts[name] = Account(name, school, Platform(platform)) if platform is not None else None
        if jti:
            used.add((jti, name))
    return accounts, frozenset(used)


def featured(s: Session, post_id: str) -> tuple[Featured, ...]:
    out = []
    for subject_id, image, name in post_featured(s, post_id):
        scopes = {Scope.IMAGE} if image else set()
        if name:
            scopes.add(Scope.NAME)
        out.append(Featured(subject_id, frozenset(scopes)))
    return tuple(out)


def domain_post(
    s: Session, row: PostColumns, media: tuple[MediaRef, ...], accounts: tuple[str, ...] | None = None
) -> Post:
    """`accounts`: the post's, if the caller has read them."""
    return Post(
        id=row.id,
        school=row.school_id,
        author=row.author,
        text=row.text,
        media=media,
        featured=featured(s, row.id),
        accounts=accounts if accounts is not None else tuple(post_accounts(s, row.id)),
        scheduled_at=row.scheduled_at,
        cancelled=row.status == "cancelled",
    )


def latest_approval(s: Session, post_id: str) -> m.ApprovalRow | None:
    return s.scalars(_LATEST_APPROVAL, {"post_id": post_id}).first()


def certificates(s: Session) -> list[Signed]:
    return [Signed(r.body, r.signature) for r in s.scalars(select(m.CertificateRow))]


def revocations(s: Session) -> list[Signed]:
    return [Signed(r.body, r.signature) for r in s.scalars(select(m.RevocationRow))]


def control(s: Session, key: str) -> str:
    row = s.get(m.ControlRow, key)
    return row.value if row else ""


def set_control(s: Session, key: str, value: str, at: datetime, actor: str) -> None:
    row = s.get(m.ControlRow, key)
    if row is None:
        s.add(m.ControlRow(key=key, value=value, changed_at=at, changed_by=actor))
    else:
        row.value, row.changed_at, row.changed_by = value, at, actor


class MediaColumns(Protocol):
    sha256: str
    mime: str


def media_file(media_dir: Path, row: MediaColumns) -> Path:
    ext = "jpg" if row.mime == "image/jpeg" else "png"
    return media_dir / row.sha256[:2] / f"{row.sha256}.{ext}"


REGISTER_VERSION = "register_version"
_VERSION: Final = select(_CONTROL_T.c.value).where(_CONTROL_T.c.key == REGISTER_VERSION)


def register_version(s: Session, lock: bool = False) -> int:
    """A counter bumped by every change the gate depends on (consent, never-publish, revocation,
    cancellation, pause, erasure, takedown, a new subject). `lock`: a publisher judging a
    delivery holds it shared until its intent commits, so no such change can commit in between
    (SQLite: the write lock does it)."""
    if lock:
        _register_lock(s, "pg_advisory_xact_lock_shared")
    value = s.scalar(_VERSION)
    return int(value) if value else 0


def hold_register(s: Session, shared: bool) -> None:
    """Take the register lock (PostgreSQL) before any delivery row or the log. The order of
    locks is always register, rows, log: a publisher judging or recording a delivery, recovery
    and release hold it shared; a change to what the gate reads (withdrawal, cancel, takedown,
    pause, never-publish, erasure) exclusive. So no two of them can each hold what the other
    waits for (PostgreSQL would abort one as a deadlock)."""
    _register_lock(s, "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock")


def _register_lock(s: Session, function: str) -> None:
    """PostgreSQL: a transaction-scoped advisory lock on the register. Its queue is fair: once a
    change waits for it, new publishers wait behind the change, so `pause` or a withdrawal is
    never starved by a burst (a FOR SHARE row lock gives no such promise)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text(f"SELECT {function}(hashtext(current_schema() || '.register_version'))"))


def bump_register_version(s: Session, at: datetime, actor: str) -> None:
    _register_lock(s, "pg_advisory_xact_lock")
    row = s.get(m.ControlRow, REGISTER_VERSION, with_for_update=True)
    if row is None:
        s.add(m.ControlRow(key=REGISTER_VERSION, value="1", changed_at=at, changed_by=actor))
    else:
        row.value, row.changed_at, row.changed_by = str(int(row.value or 0) + 1), at, actor
