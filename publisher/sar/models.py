"""The tables for subject access requests and takedowns (same `Base` as the register).

Both are mutable bookkeeping beside the register; what happened is also in the log
(`sar_answered`, `takedown_requested`, `taken_down`), which is the evidence.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from publisher.store.models import Base, UtcDateTime


class SarRequestRow(Base):
    """One subject access request: received on a date, due one calendar month later."""

    __tablename__ = "sar_requests"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    requester: Mapped[str] = mapped_column(Text)
    received: Mapped[date] = mapped_column(Date)
    due: Mapped[date] = mapped_column(Date)  # received + 1 calendar month (+ extension)
    extension_months: Mapped[int] = mapped_column(Integer, default=0)
    extension_reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)  # open | answered
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    opened_by: Mapped[str] = mapped_column(String(200))
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    answered_by: Mapped[str] = mapped_column(String(200), default="")
    answer_checkpoint: Mapped[int | None] = mapped_column(Integer, nullable=True)


class TakedownRow(Base):
    """Taking one delivery (a post on one account) off its platform, until confirmed gone.

    status: pending (to try at next_try_at), done (confirmed gone), failed (the platform refused
    for good: a person must act), not_needed (the delivery never went live).
    """

    __tablename__ = "takedowns"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(32), index=True)  # one request, several accounts
    post_id: Mapped[str] = mapped_column(ForeignKey("posts.id"), index=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"), index=True)
    account: Mapped[str] = mapped_column(String(100))
    platform: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32), default="request")  # request | subject | consent_withdrawn
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True, index=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
