"""The publish use case: one claimed delivery, checked, published, recorded exactly once.

For a queued delivery (`Publisher.publish`):
  1. one transaction: re-run the whole gate *now* (approval, window, consent, revocations,
     cancellation, pause), check the account's posting budget, render the exact approved
     bytes, and commit the intent (status `inflight`); or record why not (blocked + a
     PUBLISH_BLOCKED log entry) and stop;
  2. call the connector, outside any transaction;
  3. one transaction: the result and its log entry (POST_PUBLISHED) together.
A publish whose outcome is unknown is looked up at once (`Publisher.reconcile`): found ->
live; certainly absent -> queued again (so the gate runs again); the platform cannot say ->
tried again later and, after `reconcile_attempts`, left `unconfirmed` for a person.

Logs carry post, delivery and account ids and finding codes; never names or secrets.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.connectors import MediaItem, PublishedRef, RenderedPost
from publisher.domain import gate
from publisher.domain.manifest import manifest_sha256
from publisher.domain.model import Finding, Post
from publisher.errors import AuthFailed, ConnectorError, OutcomeUnknown, PublisherError, RateLimited, Rejected
from publisher.ledger import log as kinds
from publisher.queue import store as q
from publisher.queue.backoff import retry_delay
from publisher.queue.settings import QueueSettings
from publisher.store import db, repo
from publisher.store import models as m

if TYPE_CHECKING:
    from publisher.platforms import Platforms
    from publisher.service import Service

log = logging.getLogger("publisher.queue")
ABSENT_ONCE = "ABSENT_ONCE"
PAUSE_RECHECK = timedelta(seconds=30)
ACCOUNT_BUSY_WAIT = timedelta(seconds=1)


@dataclass(frozen=True)
class Outcome:
    """What happened to one claim; `hold_until`: leave the account alone until then."""

    state: str
    hold_until: datetime | None = None
    then: Begun | None = None  # the next claim, begun in the same transaction

    @property
    def in_doubt(self) -> bool:
        """The account has a delivery that may be live: publish nothing more there for now."""
        return self.state in ("lookup_retry", "lookup_rate_limited")


@dataclass(frozen=True)
class _Decision:
    """What the gate and the budget decided for one queued delivery."""

    action: str  # publish | block | paused | budget | cancel
    findings: list[Finding] = field(default_factory=list)
    until: datetime | None = None
    rendered: RenderedPost | None = None
    platform: str = ""
    post: Post | None = None  # as the gate judged it (featured subjects, text)


@dataclass(frozen=True)
class _Intent:
    rendered: RenderedPost
    attempts: int
    platform: str
    post: Post


Begun = _Intent | Outcome  # what beginning a claim gave: its intent, or why there is none


class _NextFailed(Exception):
    """Judging the next delivery failed inside the record of the last (see _intend_within)."""


class Publisher:
    def __init__(
        self,
        service: Service,
        platforms: Platforms,
        queue: q.SqlAlchemyQueue,
        settings: QueueSettings,
        rnd: random.Random | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.service = service
        self.platforms = platforms
        self.queue = queue
        self.settings = settings
        self.rnd = rnd or random.Random()  # noqa: S311 - jitter, not security
        self.stopping = stopping or threading.Event()  # set: begin nothing more (see handle)
        self.leases = LeaseKeeper(queue, service.now)

    def handle(self, claim: q.Claim, then: q.Claim | None = None, begun: Begun | None = None) -> Outcome:
        """Publish (or look up) one claim. `then`: the account's next queued claim, begun (judged,
        its intent committed) in the transaction that records this one live, and returned as
        `Outcome.then` to pass back here as `begun`: one write transaction per delivery instead
        of two, and one turn fewer on SQLite's write lock between an account's deliveries."""
        if begun is not None:
            return begun if isinstance(begun, Outcome) else self.publish(claim, then, begun)
        return self.reconcile(claim) if claim.reconcile else self.publish(claim, then)

    # -- publish ---------------------------------------------------------------------------
    def publish(self, claim: q.Claim, then: q.Claim | None = None, begun: _Intent | None = None) -> Outcome:
        try:
            connector = self.platforms.connector(claim.account)
        except PublisherError as exc:  # no credentials, or the vault cannot be read: a person must act
            return self._cannot_connect(claim, exc, in_flight=begun is not None)  # nothing was sent
        if begun is None:
            started = self._begin(claim)
            if isinstance(started, Outcome):
                return started
            begun = started
        try:
            with self.leases.during(claim.delivery_id):
                ref = connector.publish(begun.rendered)
        except OutcomeUnknown as exc:
            self._note(claim, "publish_outcome_unknown", error=type(exc).__name__)
            self._to_reconcile(claim, str(exc))
            return self.reconcile(claim)
        except ConnectorError as exc:
            return self._failed_call(claim, exc, begun.attempts)
        except Exception as exc:  # a bug or an unmapped error: the call may have happened
            log.exception("unexpected error publishing", extra=self._ids(claim))
            self._to_reconcile(claim, f"unexpected {type(exc).__name__}")
            return self.reconcile(claim)
        try:
            return self._record_live(claim, ref, reconciled=False, judged=begun, then=then)
        except Exception as exc:  # published, but not recorded (the database failed): in doubt
            log.exception("published but not recorded", extra={**self._ids(claim), "platform_id": ref.platform_id})
            with contextlib.suppress(Exception):
                self._to_reconcile(claim, f"published as {ref.platform_id} but not recorded ({type(exc).__name__})")
            return Outcome(
                "lookup_retry", hold_until=self.service.now() + timedelta(seconds=self.settings.settle_seconds)
            )

    def _cannot_connect(self, claim: q.Claim, exc: PublisherError, in_flight: bool = False) -> Outcome:
        """No connector for the account. `in_flight`: its intent was committed (begun with the
        last delivery) but no call was made."""
        with db.transaction(self.service.engine) as s:
            row = self.queue.lock(s, claim.delivery_id)
            if row is None or row.status != (q.INFLIGHT if in_flight else q.QUEUED):
                return Outcome("lost")
            self.queue.finish(row, q.FAILED, str(exc))
            self.queue.set_attention(s, row.account, str(exc))
        self._note(claim, q.FAILED, error=type(exc).__name__)
        return Outcome(q.FAILED)

    def _begin(self, claim: q.Claim) -> _Intent | Outcome:
        """Judge the delivery and commit the intent (or why there is nothing to do) in one
        transaction holding the row, the account and the register (PostgreSQL: FOR NO KEY UPDATE on
        the rows and a shared advisory lock on the register; SQLite: the write lock), so nothing the
        gate depends on (consent, revocation, pause, never-publish, a new subject) can commit
        between the judgement and the intent. Such a change waits, then finds the delivery in
        flight: a withdrawal or takedown takes it down, `post cancel` refuses and says so.

        (An earlier design judged in a read-only transaction and re-checked the version: on
        SQLite it cost a fifth of the burst rate and, with 100 workers, a second on the slow
        platforms benchmark: the extra transaction and reads outweighed what it saved.)
        """
        with db.transaction(self.service.engine) as s:
            return self._intend(s, claim)

    def _intend(self, s: Session, claim: q.Claim, register: repo.Register | None = None) -> Begun:
        """_begin's work inside the caller's write transaction (register first: see hold_register;
        `register`: the caller's, taken with the lock in this transaction)."""
        register = register or self.service.register(s, lock=True)
        row, now = self.queue.hold(s, claim.delivery_id, account_too=True), self.service.now()
        if row is None or row.status != q.QUEUED or not self.queue.owns(row, now):
            return Outcome("lost")
        load, post = self.queue.load_and_gate_read(s, row, now - timedelta(days=1))
        if load.busy:  # another daemon is publishing on the account
            self.queue.unlease(s, row)
            return Outcome("account_busy", hold_until=now + ACCOUNT_BUSY_WAIT)
        return self._apply(s, row, claim, self._decide(s, row, register, load, post, now))

    def _decide(
        self, s: Session, row: q.Held, register: repo.Register, load: q.Load, post: repo.GateRead, now: datetime
    ) -> _Decision:
        """What to do with a queued delivery now (reads only; `post`: the gate's read of its post)."""
        if row.cancel_requested:  # a takedown asked for it while its outcome was unknown
            return _Decision("cancel")
        read: list[tuple[str, bytes, str]] = []  # the bytes the gate judged, uploaded as they are
        gi = self._gate_input(s, row, read, register, post)
        blocking = gate.blocking(gate.evaluate(gi) if gi is not None else [_not_a_target(row)])
        if blocking and {f.code for f in blocking} == {"PUBLISHING_PAUSED"}:
            return _Decision("paused", until=now + PAUSE_RECHECK)
        if blocking:
            return _Decision("block", findings=blocking)
        wait = self._budget_wait(row, load, now)
        if wait is not None:
            return _Decision("budget", until=wait)
        if gi is None or gi.account is None:  # the gate has blocked both already
            return _Decision("block", findings=[_not_a_target(row)])
        rendered = _render_judged(gi, row.id, read)
        if isinstance(rendered, Finding):
            return _Decision("block", findings=[rendered])
        return _Decision("publish", rendered=rendered, platform=gi.account.platform.value, post=gi.post)

    def _apply(self, s: Session, held: q.Held, claim: q.Claim, d: _Decision) -> _Intent | Outcome:
        """Write what was decided, inside the caller's write transaction."""
        if d.action == "publish" and d.rendered is not None and d.post is not None:
            self.queue.start(s, held, self.service.now())
            intent = _Intent(d.rendered, held.attempts + 1, d.platform, d.post)
            self._note(claim, "publish_started", attempt=intent.attempts)
            return intent
        row = s.get(m.DeliveryRow, held.id)  # locked already
        assert row is not None
        if d.action == "cancel":
            self.queue.finish(row, q.CANCELLED, "a takedown was requested before it went out")
            return Outcome(q.CANCELLED)
        if d.action == "paused" and d.until is not None:
            self.queue.retry(row, d.until, "publishing is paused")
            return Outcome("paused")
        if d.action == "block":
            self._block(s, row, d.findings)
            return Outcome(q.BLOCKED)
        if d.action == "budget" and d.until is not None:
            self.queue.retry(row, d.until, "waiting for the account's daily posting budget")
            self._note(claim, "budget_wait", until=d.until.isoformat())
            return Outcome("budget", hold_until=d.until)
        raise AssertionError(f"no way to apply {d.action!r}")

    def _gate_input(
        self, s: Session, row: q.Held, read: list[tuple[str, bytes, str]], register: repo.Register, post: repo.GateRead
    ) -> gate.GateInput | None:
        inputs = self.service.gate_inputs(
            s, row.post_id, gate.Stage.PUBLISH, read=read, register=register, read_already=post
        )
        for gi in inputs:
            if gi.account_name == row.account:
                return gi
        return None

    def _budget_wait(self, row: q.Held, load: q.Load, now: datetime) -> datetime | None:
        account = self.service.config.account(row.account)
        if account is None:
            return None  # the gate has already said ACCOUNT_UNKNOWN
        if load.used < account.posts_per_day:
            return None
        return (load.oldest or now) + timedelta(days=1, seconds=1)

    def _render(self, s: Session, row: m.DeliveryRow) -> RenderedPost | Finding:
        """The exact approved text and image bytes of the delivery, read from the store (for a
        look-up; a publish renders what its gate read, `_render_judged`)."""
        post = repo.get_post(s, row.post_id)
        items = []
        for media in repo.post_media(s, row.post_id):
            data, sha = self._read(media)
            if sha != media.sha256:
                return Finding("APPROVAL_CONTENT_MISMATCH", "An approved image is missing or changed on disk")
            items.append(MediaItem(data, media.mime, media.sha256, media.width, media.height))
        return RenderedPost(post.text, tuple(items), row.id)

    def _read(self, media: repo.PostMedium) -> tuple[bytes, str]:
        try:
            data = repo.media_file(self.service.config.media_dir, media).read_bytes()
        except OSError:
            data = b""
        return data, hashlib.sha256(data).hexdigest()

    def _block(self, s: Session, row: m.DeliveryRow, findings: list[Finding]) -> None:
        """Blocked for good: the findings on the row (names replaced by subject ids, so erasure
        leaves none behind), and a log entry with codes in clear and messages sealed per subject.
        Every featured subject is linked to the entry, so their SAR shows the blocked post."""
        stored = [{"code": f.code, "subject": f.subject_id or "", "message": _without_names(s, f)} for f in findings]
        self.queue.finish(row, q.BLOCKED, "blocked by the gate", stored)
        codes = sorted({f.code for f in findings})
        personal: dict[str, dict[str, object]] = {
            p.subject_id: {} for p in s.scalars(select(m.PostSubjectRow).where(m.PostSubjectRow.post_id == row.post_id))
        }
        for f in findings:
            if f.subject_id:
                entry = personal.setdefault(f.subject_id, {})
                entry.setdefault("findings", []).append({"code": f.code, "message": f.message})  # type: ignore[attr-defined]
        body = {"post": row.post_id, "delivery": row.id, "account": row.account, "codes": codes, "jti": row.jti}
        self.service.record(s, kinds.PUBLISH_BLOCKED, body, personal)
        log.warning("delivery blocked", extra={**self._row_ids(row), "event": "blocked", "codes": codes})

    # -- results -----------------------------------------------------------------------------
    def _record_live(
        self,
        claim: q.Claim,
        ref: PublishedRef,
        *,
        reconciled: bool,
        judged: _Intent | None = None,
        then: q.Claim | None = None,
    ) -> Outcome:
        """The delivery is live: its row and its POST_PUBLISHED entry, in one transaction.
        `judged`: the intent this process published (its post, as judged, and the exact media
        uploaded); a delivery found by a look-up is described from the store instead. `then`:
        begun in the same transaction (see `handle`), unless the daemon is stopping; should
        judging it fail, that transaction is undone and this record made again alone, and should
        the commit fail, this record goes with it and the delivery is looked up (never re-sent)."""
        nxt: Begun | None = None
        svc, now = self.service, self.service.now()
        try:
            with db.transaction(svc.engine) as s:
                register = svc.register(s, lock=True)  # before the row: see repo.hold_register
                # The delivery's row and its post's, before the log (a blocked `then` logs).
                row = self.queue.go_live(s, claim.delivery_id, ref.platform_id, ref.url, now)
                if row is None:
                    return Outcome("lost")  # another daemon recorded it first
                if then is not None and not self.stopping.is_set():
                    # Before this one's log entry: locks in the order register, rows, log.
                    nxt = self._intend_within(s, then, register)
                if judged is not None:  # the manifest its approval bound, as the gate checked it
                    post, media = judged.post, [item.sha256 for item in judged.rendered.media]
                    manifest = manifest_sha256(post)
                else:
                    post_row = repo.get_post(s, row.post_id)
                    post = repo.domain_post(s, post_row, ())
                    media = [md.sha256 for md in repo.post_media(s, row.post_id)]
                    approval = repo.latest_approval(s, row.post_id)  # a look-up: rare
                    manifest = approval.manifest_sha256 if approval is not None else ""
                body: dict[str, Any] = {
                    "post": row.post_id,
                    "delivery": row.id,
                    "account": row.account,
                    "platform": ref.platform,
                    "platform_id": ref.platform_id,
                    "url": ref.url,
                    "jti": row.jti,
                    "manifest_sha256": manifest,
                    "media_sha256": media,
                    "attempts": row.attempts,
                    "reconciled": reconciled,
                }
                svc.record(s, kinds.POST_PUBLISHED, body, svc.personal(s, post, register))
        except _NextFailed:  # nothing of that transaction stands: record this one on its own
            assert then is not None  # only judging `then` raises it
            log.exception("could not begin the next delivery with the last", extra=self._ids(then))
            return self._record_live(claim, ref, reconciled=reconciled, judged=judged)
        self._note(claim, "published", platform_id=ref.platform_id, reconciled=reconciled)
        return Outcome(q.LIVE, then=nxt)

    def _intend_within(self, s: Session, then: q.Claim, register: repo.Register) -> Begun:
        """Begin `then` in the caller's transaction (the record of the delivery that went live).
        Should judging it fail, the whole transaction is undone (_NextFailed) and the record made
        again alone; `then` is begun again on its own. (A savepoint would keep the record, but
        costs two statements per delivery, each a round trip on PostgreSQL.)"""
        try:
            return self._intend(s, then, register)
        except Exception as exc:
            raise _NextFailed from exc

    def _failed_call(self, claim: q.Claim, exc: ConnectorError, attempts: int) -> Outcome:
        """The platform certainly did not publish: decide between later and never."""
        svc, now, st = self.service, self.service.now(), self.settings
        hold: datetime | None = None
        with db.transaction(svc.engine) as s:
            row = self.queue.lock(s, claim.delivery_id)
            if row is None or row.status != q.INFLIGHT:
                return Outcome("lost")
            if isinstance(exc, RateLimited):
                row.attempts = max(row.attempts - 1, 0)  # waiting for the platform is not a failure
                delay = retry_delay(
                    attempts, base=st.backoff_base, cap=st.backoff_max, rnd=self.rnd,
                    retry_after=exc.retry_after, max_rate_wait=st.max_rate_wait,
                )  # fmt: skip
                hold = now + timedelta(seconds=delay)
                self.queue.retry(row, hold, str(exc))
                state = "rate_limited"
            elif isinstance(exc, AuthFailed):
                self.queue.finish(row, q.FAILED, str(exc))
                self.queue.set_attention(s, row.account, str(exc))
                state = q.FAILED
            elif isinstance(exc, Rejected) or attempts >= st.max_attempts:
                self.queue.finish(row, q.FAILED, str(exc))
                state = q.FAILED
            else:
                delay = retry_delay(attempts, base=st.backoff_base, cap=st.backoff_max, rnd=self.rnd)
                self.queue.retry(row, now + timedelta(seconds=delay), str(exc))
                state = "retry"
        self._note(claim, state, error=type(exc).__name__, attempt=attempts)
        return Outcome(state, hold)

    def _to_reconcile(self, claim: q.Claim, error: str) -> None:
        """The call may have reached the platform: look it up next (whoever claims it), and
        publish nothing else on the account meanwhile."""
        with db.transaction(self.service.engine) as s:
            row = self.queue.lock(s, claim.delivery_id)
            if row is not None and row.status == q.INFLIGHT:
                self.queue.retry(row, self.service.now(), error, status=q.RECONCILE)

    # -- reconcile ---------------------------------------------------------------------------
    def reconcile(self, claim: q.Claim) -> Outcome:
        """Look the delivery up on the platform; never publishes."""
        with db.transaction(self.service.engine) as s:
            row = self.queue.lock(s, claim.delivery_id)
            if row is None or row.status not in (q.RECONCILE, q.INFLIGHT):
                return Outcome("lost")
            rendered = self._render(s, row)
            since, others = row.attempted_at, self.queue.recorded_ids(s, row.account, row.id)
        if isinstance(rendered, Finding):
            return self._lookup_failed(claim, rendered.message)
        try:
            found = self.platforms.connector(claim.account).find_recent(rendered, since=since, exclude=others)
        except RateLimited as exc:
            until = self.service.now() + timedelta(seconds=min(exc.retry_after, self.settings.max_rate_wait))
            with db.transaction(self.service.engine) as s:
                row = self.queue.lock(s, claim.delivery_id)
                if row is not None and row.status in (q.RECONCILE, q.INFLIGHT):
                    self.queue.retry(row, until, str(exc), status=q.RECONCILE)
            return Outcome("lookup_rate_limited", hold_until=until)
        except (PublisherError, Exception) as exc:  # the platform cannot say
            return self._lookup_failed(claim, str(exc) if isinstance(exc, PublisherError) else type(exc).__name__)
        if found is not None:
            return self._record_live(claim, found, reconciled=True)
        return self._absent(claim)

    def _absent(self, claim: q.Claim) -> Outcome:
        with db.transaction(self.service.engine) as s:
            row = self.queue.lock(s, claim.delivery_id)
            if row is None or row.status not in (q.RECONCILE, q.INFLIGHT):
                return Outcome("lost")
            now = self.service.now()
            if not any(f.get("code") == ABSENT_ONCE for f in row.findings or []):
                # Platforms can commit after the client gave up, and feeds lag: look again later.
                row.findings = [{"code": ABSENT_ONCE, "at": now.isoformat()}]
                hold = now + timedelta(seconds=self.settings.settle_seconds)
                self.queue.retry(row, hold, "not found yet: looking again before publishing again", q.RECONCILE)
                return Outcome("lookup_retry", hold_until=hold)
            row.findings = []
            if row.cancel_requested:
                self.queue.finish(row, q.CANCELLED, "not on the platform, and a takedown was requested")
                state = q.CANCELLED
            elif row.attempts >= self.settings.max_attempts:
                self.queue.finish(row, q.FAILED, "not on the platform after the last attempt")
                state = q.FAILED
            else:  # certainly not there: publish again, after the gate runs again
                self.queue.retry(row, self.service.now(), "not found on the platform: will try again")
                state = "absent"
        self._note(claim, state)
        return Outcome(state)

    def _lookup_failed(self, claim: q.Claim, error: str) -> Outcome:
        svc, now = self.service, self.service.now()
        with db.transaction(svc.engine) as s:
            row = self.queue.lock(s, claim.delivery_id)
            if row is None or row.status not in (q.RECONCILE, q.INFLIGHT):
                return Outcome("lost")
            count = self.queue.note_lookup_failure(row, error, now)
            if count < self.settings.reconcile_attempts:
                delay = retry_delay(count, base=self.settings.backoff_base, cap=self.settings.backoff_max, rnd=self.rnd)
                self.queue.retry(row, now + timedelta(seconds=delay), error, status=q.RECONCILE)
                state = "lookup_retry"
            else:
                self.queue.finish(row, q.UNCONFIRMED, f"the platform could not say whether it is live: {error}")
                body = {
                    "post": row.post_id,
                    "delivery": row.id,
                    "account": row.account,
                    "jti": row.jti,
                    "lookups": count,
                }
                svc.record(s, kinds.PUBLISH_UNCONFIRMED, body)
                state = q.UNCONFIRMED
        self._note(claim, state, lookups=count)
        return Outcome(state)

    # -- logging -----------------------------------------------------------------------------
    @staticmethod
    def _ids(claim: q.Claim) -> dict[str, Any]:
        return {"post": claim.post_id, "delivery": claim.delivery_id, "account": claim.account}

    @staticmethod
    def _row_ids(row: m.DeliveryRow) -> dict[str, Any]:
        return {"post": row.post_id, "delivery": row.id, "account": row.account}

    def _note(self, claim: q.Claim, event: str, **fields: Any) -> None:
        level = logging.WARNING if event in (q.FAILED, q.UNCONFIRMED) else logging.INFO
        log.log(level, event.replace("_", " "), extra={**self._ids(claim), "event": event, **fields})


def _not_a_target(row: q.Held) -> Finding:
    return Finding("APPROVAL_CONTENT_MISMATCH", f"Account {row.account} is no longer a target of the post")


def _render_judged(gi: gate.GateInput, delivery_id: str, read: list[tuple[str, bytes, str]]) -> RenderedPost | Finding:
    """The post as the gate judged it: its text, and the image bytes read for the gate (in the
    post's order: approved hash, bytes found, their hash)."""
    items = []
    if len(read) != len(gi.post.media):
        return Finding("APPROVAL_CONTENT_MISMATCH", "An approved image is missing or changed on disk")
    for (approved, data, sha), ref in zip(read, gi.post.media, strict=True):
        if sha != approved:
            return Finding("APPROVAL_CONTENT_MISMATCH", "An approved image is missing or changed on disk")
        items.append(MediaItem(data, ref.mime, approved, ref.width, ref.height))
    return RenderedPost(gi.post.text, tuple(items), delivery_id)


def _without_names(s: Session, finding: Finding) -> str:
    """A finding's message with its subject's names replaced by the subject id."""
    row = s.get(m.SubjectRow, finding.subject_id) if finding.subject_id else None
    message = finding.message
    if row is not None:
        for name in sorted({row.display_name, *row.aliases} - {""}, key=len, reverse=True):
            message = message.replace(f"{name} ({row.id})", f"subject {row.id}").replace(name, f"subject {row.id}")
    return message


class LeaseKeeper:
    """Keeps alive the leases of the claims whose platform calls are running: one thread per
    publisher, started on first use, renewing every lease/3 all the calls then running in one
    UPDATE. A call's lease runs from its intent, so it is renewed within a third of a lease
    however long the call takes. (A thread per call cost a start and a join per delivery: a
    tenth of a worker's time in the burst, most of it waiting for the GIL.)"""

    def __init__(self, queue: q.SqlAlchemyQueue, now: Callable[[], datetime]) -> None:
        self.queue, self.now = queue, now
        self._calls: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()  # set: renew no more, and start no thread again
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def during(self, delivery_id: str) -> Iterator[None]:
        """Keep the delivery's lease alive while the block runs (once closed, it keeps the
        lease it has)."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=f"lease-keeper {self.queue.owner}", daemon=True)
                self._thread.start()
            self._calls.add(delivery_id)
        try:
            yield
        finally:
            with self._lock:
                self._calls.discard(delivery_id)

    def close(self) -> None:
        """Stop renewing, for good (the daemon is stopping)."""
        self._stop.set()

    def _run(self) -> None:
        period = max(self.queue.lease.total_seconds() / 3, 0.05)
        while not self._stop.wait(period):
            with self._lock:
                running = sorted(self._calls)
            try:
                self.queue.renew(running, self.now())
            except Exception as exc:  # tried again next period; the lease is three periods long
                log.warning(
                    "could not renew leases", extra={"event": "lease_renew_failed", "error": type(exc).__name__}
                )
