"""Reading and writing the register through SQLAlchemy; rows in, domain values out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    func,
    literal_column,
    select,
    text,
    type_coerce,
    update,
)
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
from publisher.store import db
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

_LATEST: Final = _APPROVALS_T.c.id.desc()
_TOKEN: Final = (  # the post's latest approval's token
    select(_APPROVALS_T.c.token)
    .where(_APPROVALS_T.c.post_id == _POSTS.c.id)
    .order_by(_LATEST)
    .limit(1)
    .scalar_subquery()
    .label("token")
)
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


def _json_rows(dialect: str, columns: Sequence[ColumnElement[Any]], where: ColumnElement[bool], from_: Any) -> Any:
    """A scalar subquery: the rows of `columns` from `from_` where `where`, as one JSON array of
    arrays in no set order (the caller sorts), read as Python lists on either store."""
    agg: ColumnElement[Any] = (
        func.coalesce(func.json_agg(func.json_build_array(*columns)), literal_column("'[]'::json"))
        if dialect == "postgresql"
        else func.json_group_array(func.json_array(*columns))
    )
    return type_coerce(select(agg).select_from(from_).where(where).scalar_subquery(), JSON)


_GATE_ACCOUNT_COLUMNS: Final = (
    _POST_ACCOUNTS_T.c.account,
    _ACCOUNTS_T.c.school_id,  # None, with the platform: an account not configured
    _ACCOUNTS_T.c.platform,
    _DELIVERIES_T.c.jti,  # the approval it went out with, if live or taken down
)
_GATE_ACCOUNTS_FROM: Final = _POST_ACCOUNTS_T.outerjoin(
    _ACCOUNTS_T, _ACCOUNTS_T.c.name == _POST_ACCOUNTS_T.c.account
).outerjoin(_DELIVERIES_T, _PUBLISHED_WITH)


def gate_read_select(dialect: str) -> Select[Any]:
    """The post, its latest approval's token, and its accounts, media and featured subjects as
    JSON: one statement instead of four (on PostgreSQL each is a round trip). Its parameter is
    `post_id`; `as_gate_read` makes its row a GateRead. (A caller may add columns after these.)"""
    return select(
        *(_POSTS.c[name] for name in ("id", "school_id", "author", "text", "scheduled_at", "status")),
        _TOKEN,
        _json_rows(dialect, _GATE_ACCOUNT_COLUMNS, _POST_ACCOUNTS_T.c.post_id == _POST_ID, _GATE_ACCOUNTS_FROM).label(
            "accounts"
        ),
        _json_rows(
            dialect,
            (*(_MEDIA_T.c[n] for n in _MEDIA_COLUMNS), _POST_MEDIA_T.c.position),
            _POST_MEDIA_T.c.post_id == _POST_ID,
            _MEDIA_T.join(_POST_MEDIA_T, _POST_MEDIA_T.c.sha256 == _MEDIA_T.c.sha256),
        ).label("media"),
        _json_rows(
            dialect, list(_POST_FEATURED.selected_columns), _POST_SUBJECTS_T.c.post_id == _POST_ID, _POST_SUBJECTS_T
        ).label("featured"),
    ).where(_POSTS.c.id == _POST_ID)


_GATE_READ: Final = {dialect: db.Direct(gate_read_select(dialect)) for dialect in ("sqlite", "postgresql")}
_LATEST_APPROVAL: Final = select(m.ApprovalRow).where(m.ApprovalRow.post_id == _POST_ID).order_by(_LATEST).limit(1)


def post_published(post_id: Any) -> Update:
    """An approved post with a delivery live is published: the statement, on the table (an ORM
    update would look for loaded rows to refresh)."""
    return update(_POSTS).where(_POSTS.c.id == post_id, _POSTS.c.status == "approved").values(status="published")


_POST_PUBLISHED: Final = db.Direct(post_published(_POST_ID))


def mark_post_published(s: Session, post_id: str) -> None:
    """See post_published (one statement, no row loaded)."""
    _POST_PUBLISHED.run(s.connection(), {"post_id": post_id})


def post_accounts(s: Session, post_id: str) -> list[str]:
    return list(s.scalars(_POST_ACCOUNTS, {"post_id": post_id}))


def post_featured(s: Session, post_id: str) -> Sequence[Any]:
    """Who the post features, by subject id: (subject_id, image, name) rows."""
    return s.execute(_POST_FEATURED, {"post_id": post_id}).all()


def post_media(s: Session, post_id: str) -> tuple[PostMedium, ...]:
    """The post's media in order."""
    return tuple(PostMedium(*row) for row in s.execute(_POST_MEDIA, {"post_id": post_id}))


class PostColumns(Protocol):
    """What a Post is made of: a PostRow, or the row `gate_read` reads."""

    id: str
    school_id: str
    author: str
    text: str
    scheduled_at: datetime
    status: str


class GatePost(PostColumns, Protocol):
    token: str | None


class PostMedium(NamedTuple):
    """One of a post's media, as the store has it: its `media` row, in the post's order."""

    sha256: str
    mime: str
    size: int
    width: int
    height: int
    camera_make: str  # "" when the original had none
    camera_model: str
    device_id: int | None  # the approved device it matched, if any


@dataclass(frozen=True)
class GateRead:
    """What the gate reads about one post, in one statement (`gate_read`)."""

    post: GatePost  # with its latest approval's token (None if unapproved)
    accounts: dict[str, Account | None]  # in name order, as the register has them (None: not configured)
    used: frozenset[tuple[str, str]]  # (jti, account) of each delivery live or taken down
    media: tuple[PostMedium, ...]  # in the post's order
    featured: tuple[Featured, ...]  # by subject id


def gate_read(s: Session, post_id: str) -> GateRead:
    """The post, its token, accounts, approvals already used (one delivery per post and
    account), media and featured subjects. Accounts and subjects are sorted by code point
    (in Python, as the JSON comes unordered), as SQLite sorts them; a PostgreSQL database with
    a language collation would have sorted them its own way."""
    conn = s.connection()
    row = _GATE_READ[conn.dialect.name].first(conn, {"post_id": post_id})
    if row is None:
        raise NotFound("post", post_id)
    return as_gate_read(row)


def as_gate_read(row: Any) -> GateRead:
    """A row of `gate_read_select` as a GateRead."""
    accounts: dict[str, Account | None] = {}
    used = set()
    for name, school, platform, jti in sorted(row.accounts, key=lambda a: a[0]):
        accounts[name] = Account(name, school, Platform(platform)) if platform is not None else None
        if jti:
            used.add((jti, name))
    media = tuple(PostMedium(*md[:-1]) for md in sorted(row.media, key=lambda md: md[-1]))
    featured = _featured(sorted(row.featured, key=lambda f: f[0]))
    return GateRead(cast(GatePost, row), accounts, frozenset(used), media, featured)


def featured(s: Session, post_id: str) -> tuple[Featured, ...]:
    return _featured(post_featured(s, post_id))


def _featured(rows: Sequence[Sequence[Any]]) -> tuple[Featured, ...]:
    """(subject_id, image, name) rows as Featured (image and name: the scopes it features)."""
    out = []
    for subject_id, image, name in rows:
        scopes = {Scope.IMAGE} if image else set()
        if name:
            scopes.add(Scope.NAME)
        out.append(Featured(subject_id, frozenset(scopes)))
    return tuple(out)


def domain_post(
    s: Session,
    row: PostColumns,
    media: tuple[MediaRef, ...],
    accounts: tuple[str, ...] | None = None,
    featuring: tuple[Featured, ...] | None = None,
) -> Post:
    """`accounts`, `featuring`: the post's, if the caller has read them."""
    return Post(
        id=row.id,
        school=row.school_id,
        author=row.author,
        text=row.text,
        media=media,
        featured=featuring if featuring is not None else featured(s, row.id),
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


def media_file(media_dir: Path, row: PostMedium) -> Path:
    ext = "jpg" if row.mime == "image/jpeg" else "png"
    return media_dir / row.sha256[:2] / f"{row.sha256}.{ext}"


REGISTER_VERSION = "register_version"
_VERSION_SQL: Final = "SELECT value FROM control WHERE key = 'register_version'"


def register_version(s: Session, lock: bool = False) -> int:
    """A counter bumped by every change the gate depends on (consent, never-publish, revocation,
    cancellation, pause, erasure, takedown, a new subject). `lock`: a publisher judging a
    delivery holds it shared until its intent commits, so no such change can commit in between
    (SQLite: the write lock does it). On PostgreSQL the lock and the read are one round trip
    (db.read_after_lock). Neither read flushes ORM changes pending in the session."""
    locking = _register_lock_sql("pg_advisory_xact_lock_shared") if lock and _on_postgresql(s) else None
    row = db.read_after_lock(s.connection(), locking, _VERSION_SQL)
    return int(row[0]) if row is not None and row[0] else 0


def hold_register(s: Session, shared: bool) -> None:
    """Take the register lock (PostgreSQL) before any delivery row or the log. The order of
    locks is always register, rows, log: a publisher judging or recording a delivery, recovery
    and release hold it shared; a change to what the gate reads (withdrawal, cancel, takedown,
    pause, never-publish, erasure) exclusive. So no two of them can each hold what the other
    waits for (PostgreSQL would abort one as a deadlock)."""
    _register_lock(s, "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock")


def _on_postgresql(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def _register_lock_sql(function: str) -> str:
    return f"SELECT {function}(hashtext(current_schema() || '.register_version'))"


def _register_lock(s: Session, function: str) -> None:
    """PostgreSQL: a transaction-scoped advisory lock on the register. Its queue is fair: once a
    change waits for it, new publishers wait behind the change, so `pause` or a withdrawal is
    never starved by a burst (a FOR SHARE row lock gives no such promise)."""
    if _on_postgresql(s):
        s.execute(text(_register_lock_sql(function)))


def bump_register_version(s: Session, at: datetime, actor: str) -> None:
    _register_lock(s, "pg_advisory_xact_lock")
    row = s.get(m.ControlRow, REGISTER_VERSION, with_for_update=True)
    if row is None:
        s.add(m.ControlRow(key=REGISTER_VERSION, value="1", changed_at=at, changed_by=actor))
    else:
        row.value, row.changed_at, row.changed_by = str(int(row.value or 0) + 1), at, actor
