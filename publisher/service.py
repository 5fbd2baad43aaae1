"""The use cases: draft, screen, approve, register subjects and consent, manage trust.

No printing, no prompting: the CLI (and later a web page) are thin callers. Each public
method is one transaction: it commits everything or nothing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from publisher import config as cfgmod
from publisher import media as mediamod
from publisher.approvals import keys
from publisher.config import Config
from publisher.domain import approval as ap
from publisher.domain import clock, gate
from publisher.domain.limits import Platform
from publisher.domain.manifest import manifest_sha256
from publisher.domain.model import (
    ApprovalClaims,
    Certificate,
    ConsentAction,
    Finding,
    MediaRef,
    PolicySettings,
    Post,
    Role,
    Scope,
    SubjectKind,
)
from publisher.errors import InvalidInput, NotFound, TrustProblem, UsageError
from publisher.ledger import log as kinds
from publisher.ledger.keys import ensure_log_key, log_signer, log_verifier
from publisher.ledger.log import Ledger, commit_text
from publisher.ledger.note import NoteSigner
from publisher.ledger.records import Audit
from publisher.secrets import Vault, generate_key_file
from publisher.store import db, repo
from publisher.store import models as m

if TYPE_CHECKING:
    from publisher.takedown import Requested

Now = Callable[[], datetime]
# Log entry kinds that change what the gate decides for deliveries already queued.
GATE_KINDS = frozenset({
    kinds.CONSENT_GRANTED, kinds.CONSENT_WITHDRAWN, kinds.SUBJECT_NEVER_PUBLISH, kinds.APPROVER_CERTIFIED,
    kinds.APPROVER_REVOKED, kinds.POST_CANCELLED, kinds.PUBLISHING_PAUSED, kinds.PUBLISHING_RESUMED,
    kinds.SUBJECT_ERASED, kinds.TAKEDOWN_REQUESTED,
})  # fmt: skip


def _system_now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(10))


@dataclass(frozen=True)
class Screened:
    """A post and, for each of its accounts, the gate's findings."""

    post: Post
    findings: dict[str, list[Finding]]
    approval: m.ApprovalRow | None

    @property
    def blocking(self) -> list[Finding]:
        return [f for fs in self.findings.values() for f in fs if f.blocking]


class Service:
    def __init__(self, config: Config, engine: Engine, actor: str, now: Now = _system_now) -> None:
        self.config = config
        self.engine = engine
        self.actor = actor
        self.now = now
        self._register: repo.Register | None = None

    # -- setup ---------------------------------------------------------------------------
    @classmethod
    def open(cls, config: Config, actor: str, now: Now = _system_now, migrate: bool = False) -> Service:
        engine = db.make_engine(config.database_url)
        if migrate:
            db.migrate(engine, config.app_role)
        elif not db.is_initialised(engine):
            raise UsageError(
                f"The database at {config.database_url.split('///')[-1]} is not set up: run 'publisher init'"
            )
        svc = cls(config, engine, actor, now)
        svc.sync_config()
        return svc

    def close(self) -> None:
        self.engine.dispose()

    # -- the log and the vault ---------------------------------------------------------
    @functools.cached_property
    def audit(self) -> Audit:
        verifier = log_verifier(self.config.log_vkey) if self.config.log_vkey else None
        return Audit(Ledger(self.engine, verifier=verifier, origin=self.config.log_origin, now=self.now))

    def vault(self) -> Vault:
        return Vault.open(self.config.vault_path, os.environ, self.config.master_key_file)

    def log_signer(self) -> NoteSigner:
        signer = log_signer(self.vault(), self.config.log_origin)
        if self.config.log_vkey and signer.verifier.vkey != self.config.log_vkey:
            raise TrustProblem("The log key in the vault does not match log.vkey in the config: restore the vault")
        return signer

    def setup(self) -> list[str]:
        """`publisher init`: the master key file (unless one is given), the log key, its pinned vkey."""
        done = []
        from publisher.errors import MasterKeyMissing

        try:
            self.vault()
        except MasterKeyMissing:
            generate_key_file(self.config.master_key_file)
            done.append(f"vault master key written to {self.config.master_key_file} (0600): back it up offline")
        vkey = ensure_log_key(self.vault(), self.config.log_origin)
        if self.config.log_vkey != vkey:
            if self.config.log_vkey:
                raise TrustProblem("log.vkey in the config does not match the vault's log key: restore the vault")
            cfgmod.pin(self.config.path, "log", "vkey", vkey)
            done.append(f"log key created in the vault; verifier key pinned in {self.config.path}")
        return done

    def record(
        self,
        s: Session,
        kind: str,
        body: Mapping[str, object],
        personal: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        """Append a log entry in the session's transaction; personal fields are sealed per subject.
        A change the gate depends on also bumps the register version (see repo.register_version)."""
        if kind in GATE_KINDS:
            repo.bump_register_version(s, self.now(), self.actor)
        self.audit.record(s.connection(), kind, body, personal)

    def sync_config(self) -> None:
        """Schools and accounts come from config.toml; mirror them into the store."""
        with db.transaction(self.engine) as s:
            for sc in self.config.schools:
                row = s.get(m.School, sc.id)
                if row is None:
                    s.add(m.School(id=sc.id, name=sc.name))
                elif row.name != sc.name:
                    row.name = sc.name
            s.flush()
            if s.get(m.ControlRow, repo.REGISTER_VERSION) is None:  # exists before any change races to make it
                s.add(m.ControlRow(key=repo.REGISTER_VERSION, value="0", changed_at=self.now(), changed_by="setup"))
            for ac in self.config.accounts:
                arow = s.get(m.AccountRow, ac.name)
                if arow is None:
                    s.add(
                        m.AccountRow(
                            name=ac.name,
                            school_id=ac.school,
                            platform=ac.platform.value,
                            handle=ac.handle,
                            secret_name=ac.secret,
                            sandbox=ac.sandbox,
                        )
                    )
                else:
                    arow.school_id, arow.platform, arow.handle = ac.school, ac.platform.value, ac.handle
                    arow.secret_name, arow.sandbox = ac.secret, ac.sandbox

    def _school(self, school: str | None) -> str:
        ids = [sc.id for sc in self.config.schools]
        if school is None:
            if len(ids) == 1:
                return ids[0]
            raise InvalidInput(f"Several schools are configured ({', '.join(ids)}): pass --school")
        if school not in ids:
            raise NotFound("school", school, hint=f"configured schools: {', '.join(ids) or 'none'}")
        return school

    # -- trust ---------------------------------------------------------------------------
    def root_public_key(self) -> bytes | None:
        if not self.config.root_public_key:
            return None
        try:
            raw = base64.b64decode(self.config.root_public_key, validate=True)
        except ValueError:
            raise TrustProblem(
                f"{self.config.path}: trust.root_public_key is not base64: run 'publisher trust init' or restore it"
            ) from None
        if len(raw) != 32:
            raise TrustProblem(f"{self.config.path}: trust.root_public_key is not an Ed25519 public key")
        return raw

    def trust_init(self, passphrase: str) -> str:
        if self.config.root_public_key:
            raise UsageError("A Trust root key is already pinned in the config; it is never replaced silently")
        root = Ed25519PrivateKey.generate()
        keys.write_private_key(self.config.root_key_file, root, passphrase)
        pub = base64.b64encode(ap.raw_public(root.public_key())).decode("ascii")
        cfgmod.pin(self.config.path, "trust", "root_public_key", pub)
        return pub

    def _root(self, passphrase: str, key_file: Path | None) -> Ed25519PrivateKey:
        pinned = self.root_public_key()
        if pinned is None:
            raise TrustProblem("No Trust root key is pinned in the config: run 'publisher trust init'")
        root = keys.read_private_key(key_file or self.config.root_key_file, passphrase)
        if ap.raw_public(root.public_key()) != pinned:
            raise TrustProblem("That key is not the Trust root pinned in the config")
        return root

    def approver_add(
        self,
        name: str,
        role: Role,
        schools: Sequence[str],
        root_passphrase: str,
        approver_passphrase: str,
        valid_days: int = 365,
        out: Path | None = None,
        root_key_file: Path | None = None,
    ) -> tuple[str, Path]:
        if not name.strip():
            raise InvalidInput('The approver\'s name is empty: pass --name "Full Name"')
        school_ids = [self._school(sc) for sc in schools]
        if valid_days < 1 or valid_days > 3 * 366:
            raise InvalidInput("--valid-days must be between 1 and 1098")
        keys.check_passphrase(approver_passphrase)
        root = self._root(root_passphrase, root_key_file)
        approver = Ed25519PrivateKey.generate()
        pub = ap.raw_public(approver.public_key())
        kid = ap.key_id(pub)
        now = self.now()
        signed = ap.issue_certificate(
            root, pub, name.strip(), role, frozenset(school_ids), now, now + timedelta(days=valid_days), new_id("C-")
        )
        path = out or self.config.keys_dir / "approvers" / f"{kid}.pem"
        with db.transaction(self.engine) as s:
            s.add(
                m.CertificateRow(
                    key_id=kid, body=signed.body, signature=signed.signature, name=name.strip(), created_at=now
                )
            )
            s.flush()
            self.record(
                s,
                kinds.APPROVER_CERTIFIED,
                {
                    "key_id": kid,
                    "name": name.strip(),
                    "role": role.value,
                    "schools": sorted(school_ids),
                    "valid_until": (now + timedelta(days=valid_days)).isoformat(),
                    "certificate_sha256": hashlib.sha256(signed.body).hexdigest(),
                    "actor": self.actor,
                },
            )
            keys.write_private_key(path, approver, approver_passphrase)
            self._on_rollback(s, path)
        return kid, path

    @staticmethod
    def _on_rollback(s: Session, path: Path) -> None:
        """Remove a key file written inside a transaction if that transaction does not commit."""
        from sqlalchemy import event

        def drop(_session: Session, _transaction: object = None) -> None:
            path.unlink(missing_ok=True)

        event.listen(s, "after_soft_rollback", drop, once=True)

    def approver_revoke(self, kid: str, reason: str, root_passphrase: str, root_key_file: Path | None = None) -> None:
        if not reason.strip():
            raise InvalidInput("A revocation needs --reason")
        root = self._root(root_passphrase, root_key_file)
        with db.transaction(self.engine) as s:
            if s.get(m.CertificateRow, kid) is None:
                raise NotFound("approver key", kid, hint="see 'publisher trust approver list'")
            signed = ap.issue_revocation(root, kid, self.now(), reason.strip())
            s.add(m.RevocationRow(key_id=kid, body=signed.body, signature=signed.signature, created_at=self.now()))
            self.record(s, kinds.APPROVER_REVOKED, {"key_id": kid, "reason": reason.strip(), "actor": self.actor})

    def approver_list(self) -> list[dict[str, object]]:
        """Every stored certificate, with whether it verifies against the pinned root and is revoked."""
        pinned = self.root_public_key()
        with db.transaction(self.engine) as s:
            certs = list(s.scalars(select(m.CertificateRow).order_by(m.CertificateRow.created_at)))
            revs = repo.revocations(s)
        revoked: set[str] = set()
        out: list[dict[str, object]] = []
        for r in revs:
            try:
                if pinned is None:
                    raise ap.SignatureProblem("no root pinned")
                revoked.add(ap.verify_revocation(pinned, r).key_id)
            except ap.SignatureProblem as exc:
                out.append({"key_id": "-", "name": "(a revocation)", "status": f"IGNORED revocation: {exc}"})
        for row in certs:
            entry: dict[str, object] = {"key_id": row.key_id, "name": row.name}
            try:
                if pinned is None:
                    raise ap.SignatureProblem("no root pinned")
                cert = ap.verify_certificate(pinned, ap.Signed(row.body, row.signature))
                entry.update(
                    name=cert.name,
                    role=cert.role.value,
                    schools=sorted(cert.schools),
                    valid_until=cert.valid_until.isoformat(),
                    status="revoked" if cert.key_id in revoked else "valid",
                )
            except ap.SignatureProblem as exc:
                entry.update(status=f"IGNORED: {exc}")
            out.append(entry)
        return out

    # -- subjects and consent ------------------------------------------------------------
    def subject_add(self, name: str, kind: SubjectKind, aliases: Sequence[str] = (), school: str | None = None) -> str:
        if not name.strip():
            raise InvalidInput('The display name is empty: pass --name "First Last"')
        clean = [a.strip() for a in aliases if a.strip()]
        sid = new_id("S-")
        with db.transaction(self.engine) as s:
            s.add(
                m.SubjectRow(
                    id=sid,
                    school_id=self._school(school),
                    kind=kind.value,
                    display_name=name.strip(),
                    aliases=clean,
                    created_at=self.now(),
                    created_by=self.actor,
                )
            )
            repo.bump_register_version(s, self.now(), self.actor)  # the gate's name screen changed
        return sid

    def subjects(self) -> list[m.SubjectRow]:
        with db.transaction(self.engine) as s:
            return list(s.scalars(select(m.SubjectRow).order_by(m.SubjectRow.display_name)))

    def subject(self, subject_id: str) -> m.SubjectRow:
        with db.transaction(self.engine) as s:
            return repo.get_subject(s, subject_id)

    def never_publish(self, subject_id: str, reason: str) -> None:
        if not reason.strip():
            raise InvalidInput("--reason is required (safeguarding, court order, ...)")
        with db.transaction(self.engine) as s:
            repo.hold_register(s, shared=False)  # before the subject's row: see hold_register
            row = repo.get_subject(s, subject_id)
            row.never_publish, row.never_publish_reason = True, reason.strip()
            self.record(s, kinds.SUBJECT_NEVER_PUBLISH, {"actor": self.actor}, {subject_id: {"name": row.display_name}})

    def consent_grant(
        self, subject_id: str, platform: Platform, scope: Scope, evidence: str, expires: date | None = None
    ) -> date:
        if not evidence.strip():
            raise InvalidInput("--evidence is required: the consent form or agreement reference")
        now = self.now()
        today = now.astimezone(ZoneInfo(self.config.timezone)).date()
        until = expires or clock.end_of_academic_year(today)
        if until < today:
            raise InvalidInput(f"--expires {until} is in the past: give a future date")
        with db.transaction(self.engine) as s:
            row = repo.get_subject(s, subject_id)
            repo.add_consent(
                s, subject_id, platform, scope, ConsentAction.GRANT, now, self.actor, evidence.strip(), until
            )
            body = {"platform": platform.value, "scope": scope.value, "expires": until.isoformat(), "actor": self.actor}
            self.record(
                s, kinds.CONSENT_GRANTED, body, {subject_id: {"name": row.display_name, "evidence": evidence.strip()}}
            )
        return until

    def consent_withdraw(
        self, subject_id: str, platform: Platform, scope: Scope, evidence: str = ""
    ) -> list[Requested]:
        """Record the withdrawal and, in the same transaction, queue the takedown of every live post
        on that platform that relied on it (featuring the subject for that use, or naming them).
        Returns the takedown requests queued."""
        from publisher.takedown import live_featuring, queue_consent_takedowns

        with db.transaction(self.engine) as s:
            repo.hold_register(s, shared=False)  # then the rows, then the log: see hold_register
            row = repo.get_subject(s, subject_id)
            due = live_featuring(s, subject_id, platform.value, scope.value)  # locked, before the log
            repo.add_consent(
                s, subject_id, platform, scope, ConsentAction.WITHDRAW, self.now(), self.actor, evidence.strip()
            )
            body = {"platform": platform.value, "scope": scope.value, "actor": self.actor}
            self.record(
                s, kinds.CONSENT_WITHDRAWN, body, {subject_id: {"name": row.display_name, "evidence": evidence.strip()}}
            )
            queued = queue_consent_takedowns(self, s, due, platform.value, scope.value)
        return queued

    def consent_rows(self, subject_id: str | None = None) -> list[m.ConsentEventRow]:
        with db.transaction(self.engine) as s:
            q = select(m.ConsentEventRow).order_by(m.ConsentEventRow.at, m.ConsentEventRow.id)
            if subject_id is not None:
                repo.get_subject(s, subject_id)
                q = q.where(m.ConsentEventRow.subject_id == subject_id)
            return list(s.scalars(q))

    # -- devices -------------------------------------------------------------------------
    def device_add(self, make: str, model: str, serial: str = "") -> int:
        if not make.strip() or not model.strip():
            raise InvalidInput("A device needs --make and --model as the camera records them (e.g. Apple, iPhone 14)")
        with db.transaction(self.engine) as s:
            row = m.DeviceRow(
                make=make.strip(), model=model.strip(), serial=serial.strip(), added_at=self.now(), added_by=self.actor
            )
            s.add(row)
            s.flush()
            return row.id

    def devices(self) -> list[m.DeviceRow]:
        with db.transaction(self.engine) as s:
            return list(s.scalars(select(m.DeviceRow).order_by(m.DeviceRow.id)))

    @staticmethod
    def _match_device(s: Session, make: str, model: str, serial: str) -> int | None:
        if not make and not model:
            return None
        for d in s.scalars(select(m.DeviceRow)):
            same = d.make.casefold() == make.casefold() and d.model.casefold() == model.casefold()
            if same and (not d.serial or d.serial == serial):
                return d.id
        return None

    # -- posts ---------------------------------------------------------------------------
    def post_draft(
        self,
        text: str,
        accounts: Sequence[str],
        at: str,
        media: Sequence[Path] = (),
        featured: Sequence[str] = (),
    ) -> str:
        if not accounts:
            raise InvalidInput("A post needs at least one --account")
        scheduled = self._schedule(at)
        merged: dict[str, tuple[bool, bool]] = {}
        for sid, image, named in (parse_featured(f) for f in featured):  # S:image and S:name given apart
            was_image, was_named = merged.get(sid, (False, False))
            merged[sid] = (was_image or image, was_named or named)
        specs = [(sid, image, named) for sid, (image, named) in merged.items()]
        intakes = [mediamod.strip(mediamod.read_file(p, self.config.max_media_bytes), p.name) for p in media]
        with db.transaction(self.engine) as s:
            school = self._post_school(s, accounts)
            for sid, _, _ in specs:
                row = repo.get_subject(s, sid)
                if row.school_id != school:
                    raise InvalidInput(f"Subject {sid} belongs to {row.school_id}, not {school}")
            post_id = new_id("P-")
            s.add(
                m.PostRow(
                    id=post_id,
                    school_id=school,
                    author=self.actor,
                    text=text,
                    scheduled_at=scheduled,
                    status="draft",
                    created_at=self.now(),
                )
            )
            s.flush()
            for name in dict.fromkeys(accounts):
                s.add(m.PostAccountRow(post_id=post_id, account=name))
            for sid, image, named in specs:
                s.add(m.PostSubjectRow(post_id=post_id, subject_id=sid, image=image, name=named))
            for pos, it in enumerate(intakes):
                self._add_media(s, it)
                s.add(m.PostMediaRow(post_id=post_id, position=pos, sha256=it.sha256))
            s.flush()
            for it in intakes:
                mediamod.store(self.config.media_dir, it)
        return post_id

    def _schedule(self, at: str) -> datetime:
        try:
            scheduled = clock.parse_local(at, self.config.timezone)
        except clock.LocalTimeError as exc:
            raise InvalidInput(f"--at {exc}") from None
        if scheduled < self.now() - timedelta(minutes=1):
            raise InvalidInput(f"--at {at} is in the past: give a future time ({self.config.timezone})")
        return scheduled

    def _post_school(self, s: Session, accounts: Sequence[str]) -> str:
        schools = set()
        for name in accounts:
            row = s.get(m.AccountRow, name)
            if row is None or self.config.account(name) is None:
                known = ", ".join(a.name for a in self.config.accounts) or "none"
                raise NotFound("account", name, hint=f"configured accounts: {known}")
            schools.add(row.school_id)
        if len(schools) != 1:
            raise InvalidInput("All accounts of one post must belong to the same school")
        return schools.pop()

    def _add_media(self, s: Session, it: mediamod.Intake) -> None:
        if s.get(m.MediaRow, it.sha256) is not None:
            return
        device = self._match_device(s, it.camera_make, it.camera_model, it.camera_serial)
        s.add(
            m.MediaRow(
                sha256=it.sha256,
                mime=it.mime,
                size=len(it.data),
                width=it.width,
                height=it.height,
                camera_make=it.camera_make,
                camera_model=it.camera_model,
                device_id=device,
                added_at=self.now(),
            )
        )
        s.flush()

    def posts(self, status: str | None = None) -> list[m.PostRow]:
        with db.transaction(self.engine) as s:
            q = select(m.PostRow).order_by(m.PostRow.scheduled_at)
            if status:
                q = q.where(m.PostRow.status == status)
            return list(s.scalars(q))

    def post_cancel(self, post_id: str, reason: str = "") -> None:
        with db.transaction(self.engine) as s:
            repo.hold_register(s, shared=False)  # before the rows: see hold_register
            row = repo.get_post(s, post_id)
            if row.status in ("cancelled", "published"):
                raise UsageError(
                    f"Post {post_id} is {row.status}: nothing to cancel (use 'publisher takedown' for a live post)"
                )
            # Locked (PostgreSQL): a delivery a daemon is judging is read after its intent commits,
            # so a queued row turned in flight meanwhile is never overwritten as cancelled.
            deliveries = list(
                s.scalars(select(m.DeliveryRow).where(m.DeliveryRow.post_id == post_id).with_for_update())
            )
            going = sorted(d.account for d in deliveries if d.status in ("inflight", "reconcile", "unconfirmed"))
            if going:
                raise UsageError(
                    f"Post {post_id} is being published on {', '.join(going)} right now: nothing was cancelled; "
                    f"if it goes live, take it down with 'publisher takedown {post_id}'"
                )
            row.status, row.cancelled_at, row.cancelled_by = "cancelled", self.now(), self.actor
            row.cancel_reason = reason  # kept in the register, not the log: it may name a child
            for d in deliveries:
                if d.status == "queued":
                    d.status = "cancelled"
            self.record(s, kinds.POST_CANCELLED, {"post": post_id, "actor": self.actor})

    # -- screening and approval ----------------------------------------------------------
    def media_refs(
        self, rows: Sequence[repo.PostMedium], read: list[tuple[str, bytes, str]] | None = None
    ) -> tuple[MediaRef, ...]:
        """The post's media (its `post_media` rows) as they are on disk now: hash and metadata
        recomputed from the bytes. `read` collects what was read, in the post's order (approved
        sha256, the bytes, their actual sha256), so the publisher uploads exactly the bytes the
        gate judged."""
        out = []
        for row in rows:
            path = repo.media_file(self.config.media_dir, row)
            try:
                data = path.read_bytes()
            except OSError:
                data = b""
            sha = hashlib.sha256(data).hexdigest()
            if read is not None:
                read.append((row.sha256, data, sha))
            try:
                clean = not mediamod.metadata_blocks(data)
            except Exception:  # unreadable bytes: the hash already differs from the approval
                clean = False
            out.append(
                MediaRef(
                    sha,
                    row.mime,
                    len(data),
                    row.width,
                    row.height,
                    clean,
                    row.device_id is not None if (row.camera_make or row.camera_model) else None,
                )
            )
        return tuple(out)

    def gate_inputs(
        self,
        s: Session,
        post_id: str,
        stage: gate.Stage,
        token: str | None = None,
        read: list[tuple[str, bytes, str]] | None = None,
        register: repo.Register | None = None,
        read_already: repo.GateRead | None = None,
    ) -> list[gate.GateInput]:
        """What the gate reads for each of the post's accounts. `register`: the caller's, read
        in this transaction (the publisher's, taken with the register lock); `read_already`: the
        post's gate read, if the caller made it in this transaction (the publisher's, with the
        account's load)."""
        s.flush()  # the gate's read goes to the driver (db.Direct), which does not flush the Session
        g = read_already if read_already is not None else repo.gate_read(s, post_id)
        accounts = g.accounts
        post = repo.domain_post(s, g.post, self.media_refs(g.media, read), tuple(accounts), g.featured)
        tok = token if token is not None else g.post.token
        register = register or self.register(s)
        subjects, consents = register.subjects, list(register.consents)
        for f in post.featured:  # a featured subject must be found even if the register lost them
            if f.subject_id not in subjects:
                srow = s.get(m.SubjectRow, f.subject_id)
                if srow is not None and not srow.erased:
                    subjects = {**subjects, srow.id: repo.subject(srow)}
                    consents += repo.consent_events(s, [srow.id])
        common = dict(
            post=post,
            token=tok,
            certificates=list(register.certificates),
            revocations=list(register.revocations),
            root_public_key=self.root_public_key(),
            subjects=subjects,
            consents=consents,
            settings=self.policy(register),
            now=self.now(),
            stage=stage,
            tz_name=self.config.timezone,
            used=g.used,
        )
        return [
            gate.GateInput(account_name=name, account=account, **common)  # type: ignore[arg-type]
            for name, account in accounts.items()
        ]

    def register(self, s: Session, lock: bool = False) -> repo.Register:
        """The Trust's register as the gate reads it, cached while the register version stands
        (every delivery's gate would otherwise load every subject and consent event). `lock`:
        held until the transaction ends (see repo.register_version)."""
        version = repo.register_version(s, lock=lock)
        cached = self._register
        if cached is None or cached.version != version:
            cached = self._register = repo.load_register(s, version)
        return cached

    def policy(self, register: repo.Register) -> PolicySettings:
        return PolicySettings(
            paused=register.paused,
            device_unknown_blocks=self.config.device_unknown_blocks,
            max_media_bytes=self.config.max_media_bytes,
        )

    def screen(self, post_id: str, stage: gate.Stage = gate.Stage.SCREEN) -> Screened:
        with db.transaction(self.engine) as s:
            inputs = self.gate_inputs(s, post_id, stage)
            approval = repo.latest_approval(s, post_id)
        post = inputs[0].post if inputs else None
        if post is None:
            raise InvalidInput(f"Post {post_id} has no accounts")
        return Screened(post, {gi.account_name: gate.evaluate(gi) for gi in inputs}, approval)

    def approve(
        self,
        post_id: str,
        key_file: Path,
        passphrase: str,
        window_hours: int = 12,
        expected_manifest: str | None = None,
    ) -> m.ApprovalRow:
        """Sign the post as it is now; refuse while any blocking finding exists.

        expected_manifest is the manifest hash of the post as the approver was shown it: if the
        post changed in between, nothing is signed.
        """
        if not 1 <= window_hours <= 24 * 14:
            raise InvalidInput("--window-hours must be between 1 and 336")
        approver = keys.read_private_key(key_file, passphrase)
        kid = ap.key_id(ap.raw_public(approver.public_key()))
        now = self.now()
        with db.transaction(self.engine) as s:
            row = repo.get_post(s, post_id)
            if row.status != "draft":
                raise UsageError(f"Post {post_id} is {row.status}; only a draft can be approved")
            cert = self._certificate(s, kid)
            post = repo.domain_post(s, row, self.media_refs(repo.post_media(s, post_id)))
            if expected_manifest is not None and manifest_sha256(post) != expected_manifest:
                raise UsageError(f"Post {post_id} changed while it was being reviewed: show it again and re-approve")
            nbf = post.scheduled_at
            naf = nbf + timedelta(hours=window_hours)
            if naf <= now:
                raise UsageError(f"Post {post_id}'s time and window have passed: draft it again with a new --at")
            if nbf > now + timedelta(days=self.config.approval_max_days):
                raise UsageError(
                    f"Post {post_id} is more than {self.config.approval_max_days} days away "
                    "(policy.approval_max_days): approve it nearer the time"
                )
            claims = ApprovalClaims(
                post.id,
                post.school,
                manifest_sha256(post),
                post.accounts,
                nbf,
                naf,
                naf,
                now,
                secrets.token_hex(16),
                kid,
            )
            token = ap.sign_approval(approver, claims)
            inputs = self.gate_inputs(s, post_id, gate.Stage.APPROVE, token)
            findings = [f for gi in inputs for f in gate.evaluate(gi) if f.blocking]
            if findings:
                raise ApprovalRefused(findings)
            approval = m.ApprovalRow(
                post_id=post.id,
                token=token,
                jti=claims.jti,
                key_id=kid,
                approver=cert.name,
                manifest_sha256=claims.manifest_sha256,
                not_before=nbf,
                not_after=naf,
                expires=naf,
                approved_at=now,
                actor=self.actor,
            )
            s.add(approval)
            row.status = "approved"
            commitment = commit_text(post.text)
            row.text_salt = commitment["salt"]  # the log holds only the salted hash
            for account in post.accounts:  # one delivery per (post, account), due at the scheduled time
                s.add(
                    m.DeliveryRow(
                        id=new_id("D-"), post_id=post.id, account=account, due_at=nbf, status="queued", jti=claims.jti
                    )
                )
            s.flush()
            self.record(
                s,
                kinds.APPROVAL_RECORDED,
                {
                    "post": post.id,
                    "jti": claims.jti,
                    "key_id": kid,
                    "approver": cert.name,
                    "manifest_sha256": claims.manifest_sha256,
                    "accounts": sorted(post.accounts),
                    "not_before": nbf.isoformat(),
                    "not_after": naf.isoformat(),
                    "text_sha256": commitment["sha256"],
                    "media_sha256": [m_.sha256 for m_ in post.media],
                    "actor": self.actor,
                },
                self.personal(s, post),
            )
            return approval

    def _certificate(self, s: Session, kid: str) -> Certificate:
        """The approver's certificate, verified against the pinned root (never the stored name)."""
        row = s.get(m.CertificateRow, kid)
        if row is None:
            raise TrustProblem(f"Key {kid} has no certificate: ask the DFO to run 'publisher trust approver add'")
        pinned = self.root_public_key()
        try:
            if pinned is None:
                raise ap.SignatureProblem("no Trust root is pinned in the config")
            return ap.verify_certificate(pinned, ap.Signed(bytes(row.body), bytes(row.signature)))
        except ap.SignatureProblem as exc:
            raise TrustProblem(f"The certificate for key {kid} is not valid ({exc}): ask the DFO") from None

    def personal(self, s: Session, post: Post, register: repo.Register | None = None) -> dict[str, dict[str, object]]:
        """What the log keeps, sealed, about each subject of a post: those featured, and those
        the text names without featuring them (their SAR must show the post too). `register`:
        the caller's, read in this transaction."""
        out: dict[str, dict[str, object]] = {}
        register = register or self.register(s)
        for f in post.featured:
            known = register.subjects.get(f.subject_id)
            row = None if known else s.get(m.SubjectRow, f.subject_id)  # erased since, say
            out[f.subject_id] = {
                "name": known.display_name if known else row.display_name if row else "",
                "caption": post.text,
                "scopes": sorted(sc.value for sc in f.scopes),
            }
        for subject in gate.named_subjects(post.text, register.subjects):
            out.setdefault(subject.id, {"name": subject.display_name, "caption": post.text, "scopes": ["named"]})
        return out


class ApprovalRefused(UsageError):
    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        codes = ", ".join(sorted({f.code for f in findings})) or "blocking findings"
        super().__init__(f"Approval refused: {codes}. Fix them (see 'publisher post show') and approve again")


def parse_featured(spec: str) -> tuple[str, bool, bool]:
    """'S-123' (image), 'S-123:name', 'S-123:image+name' -> (id, image, name)."""
    sid, _, scopes = spec.partition(":")
    parts = set((scopes or "image").split("+"))
    if not sid or not parts <= {"image", "name"}:
        raise InvalidInput(f"--subject {spec!r}: use ID, ID:image, ID:name or ID:image+name")
    return sid, "image" in parts, "name" in parts
