"""The project's tables (SQLAlchemy 2 typed models). SQL lives only in publisher.store.

Times are stored as timezone-aware UTC. Consent is a table of events, never updated.
Certificates and revocations keep the exact signed bytes; the gate re-verifies them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime, date: Date, dict[str, Any]: JSON}  # noqa: RUF012


class School(Base):
    __tablename__ = "schools"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


class AccountRow(Base):
    __tablename__ = "accounts"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    platform: Mapped[str] = mapped_column(String(16))
    handle: Mapped[str] = mapped_column(String(200), default="")
    secret_name: Mapped[str] = mapped_column(String(100))
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_attention: Mapped[str] = mapped_column(Text, default="")


class SubjectRow(Base):
    __tablename__ = "subjects"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    kind: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(200))
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    never_publish: Mapped[bool] = mapped_column(Boolean, default=False)
    never_publish_reason: Mapped[str] = mapped_column(Text, default="")
    erased: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))


class ConsentEventRow(Base):
    __tablename__ = "consent_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    evidence: Mapped[str] = mapped_column(Text, default="")
    expires: Mapped[date | None] = mapped_column(Date, nullable=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))


class DeviceRow(Base):
    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    make: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    serial: Mapped[str] = mapped_column(String(200), default="")
    added_at: Mapped[datetime]
    added_by: Mapped[str] = mapped_column(String(200))


class MediaRow(Base):
    __tablename__ = "media"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    mime: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    camera_make: Mapped[str] = mapped_column(String(200), default="")
    camera_model: Mapped[str] = mapped_column(String(200), default="")
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"), nullable=True)
    added_at: Mapped[datetime]


class PostRow(Base):
    __tablename__ = "posts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    author: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    scheduled_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    cancelled_by: Mapped[str] = mapped_column(String(200), default="")
    cancel_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    text_salt: Mapped[str] = mapped_column(String(64), default="", server_default="")  # the log has only the hash


class PostMediaRow(Base):
    __tablename__ = "post_media"
    post_id: Mapped[str] = mapped_column(ForeignKey("posts.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("media.sha256"))


class PostSubjectRow(Base):
    __tablename__ = "post_subjects"
    post_id: Mapped[str] = mapped_column(ForeignKey("posts.id"), primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), primary_key=True)
    image: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[bool] = mapped_column(Boolean)


class PostAccountRow(Base):
    __tablename__ = "post_accounts"
    post_id: Mapped[str] = mapped_column(ForeignKey("posts.id"), primary_key=True)
    account: Mapped[str] = mapped_column(ForeignKey("accounts.name"), primary_key=True)


class ApprovalRow(Base):
    __tablename__ = "approvals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    post_id: Mapped[str] = mapped_column(ForeignKey("posts.id"), index=True)
    token: Mapped[str] = mapped_column(Text)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str] = mapped_column(String(32))
    approver: Mapped[str] = mapped_column(String(200))
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    expires: Mapped[datetime]
    approved_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))


class DeliveryRow(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("post_id", "account"),
        Index("ix_deliveries_account_status_published", "account", "status", "published_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    post_id: Mapped[str] = mapped_column(ForeignKey("posts.id"))  # indexed by the unique (post_id, account)
    account: Mapped[str] = mapped_column(ForeignKey("accounts.name"))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    lease_owner: Mapped[str] = mapped_column(String(100), default="")
    lease_expires: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    jti: Mapped[str] = mapped_column(String(64), default="")
    platform_id: Mapped[str] = mapped_column(String(100), default="")
    url: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    taken_down_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    attempted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # last platform call began
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class CertificateRow(Base):
    __tablename__ = "approver_certificates"
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class RevocationRow(Base):
    __tablename__ = "revocations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class ControlRow(Base):
    """Small mutable switches: the emergency stop."""

    __tablename__ = "control"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime]
    changed_by: Mapped[str] = mapped_column(String(200))
