"""A small, fully valid world for gate tests: every test breaks exactly one thing."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from publisher.domain import approval as ap
from publisher.domain import gate
from publisher.domain.limits import Platform
from publisher.domain.manifest import manifest_sha256
from publisher.domain.model import (
    Account,
    ApprovalClaims,
    ConsentAction,
    ConsentEvent,
    Featured,
    MediaRef,
    PolicySettings,
    Post,
    Role,
    Scope,
    Subject,
    SubjectKind,
)

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)  # when things were set up
DUE = datetime(2027, 3, 28, 8, 0, tzinfo=UTC)  # 09:00 Europe/London, the first BST morning


def jpeg(sha: str = "a" * 64, width: int = 1080, height: int = 1080, **kw: Any) -> MediaRef:
    return MediaRef(sha, "image/jpeg", 200_000, width, height, True, kw.pop("device_known", True), **kw)


class World:
    def __init__(self) -> None:
        self.root = Ed25519PrivateKey.generate()
        self.root_pub = ap.raw_public(self.root.public_key())
        self.approver = Ed25519PrivateKey.generate()
        self.approver_pub = ap.raw_public(self.approver.public_key())
        self.kid = ap.key_id(self.approver_pub)
        self.certs = [self.certify("Jane Head", self.approver_pub, {"stmarys"})]
        self.revocations: list[ap.Signed] = []
        self.amelia = Subject("S-AMELIA", "stmarys", SubjectKind.PUPIL, "Amelia Jones", ("Millie",))
        self.oliver = Subject("S-OLIVER", "stmarys", SubjectKind.PUPIL, "Oliver Smith")
        self.subjects = {s.id: s for s in (self.amelia, self.oliver)}
        self.consents = [self.grant(s, p, sc) for s in ("S-AMELIA",) for p in Platform for sc in Scope]
        self.accounts = {
            "stmarys-x": Account("stmarys-x", "stmarys", Platform.X),
            "stmarys-facebook": Account("stmarys-facebook", "stmarys", Platform.FACEBOOK),
            "stmarys-instagram": Account("stmarys-instagram", "stmarys", Platform.INSTAGRAM),
        }
        self.post = Post(
            id="P-1",
            school="stmarys",
            author="Sam Teacher",
            text="A wonderful sports day for Amelia and her class!",
            media=(jpeg(),),
            featured=(Featured("S-AMELIA", frozenset({Scope.IMAGE, Scope.NAME})),),
            accounts=tuple(self.accounts),
            scheduled_at=DUE,
        )
        self.settings = PolicySettings()
        self.used: frozenset[tuple[str, str]] = frozenset()
        self.token = self.sign()

    def certify(
        self,
        name: str,
        pub: bytes,
        schools: set[str],
        signer: Ed25519PrivateKey | None = None,
        role: Role = Role.HEADTEACHER,
        until: datetime | None = None,
    ) -> ap.Signed:
        return ap.issue_certificate(
            signer or self.root,
            pub,
            name,
            role,
            frozenset(schools),
            T0 - timedelta(days=1),
            until or T0 + timedelta(days=365),
            "C-1",
        )

    @staticmethod
    def grant(
        subject: str, platform: Platform, scope: Scope, at: datetime = T0, action: ConsentAction = ConsentAction.GRANT
    ) -> ConsentEvent:
        return ConsentEvent(subject, platform, scope, action, at, None, "form 12")

    def claims(self, **over: Any) -> ApprovalClaims:
        base = ApprovalClaims(
            post_id=self.post.id,
            school=self.post.school,
            manifest_sha256=manifest_sha256(self.post),
            accounts=self.post.accounts,
            not_before=DUE,
            not_after=DUE + timedelta(hours=12),
            expires=DUE + timedelta(hours=12),
            issued_at=T0,
            jti="jti-1",
            key_id=self.kid,
        )
        return dataclasses.replace(base, **over)

    def sign(self, key: Ed25519PrivateKey | None = None, **over: Any) -> str:
        return ap.sign_approval(key or self.approver, self.claims(**over))

    def inputs(
        self,
        account: str = "stmarys-x",
        now: datetime = DUE + timedelta(seconds=1),
        stage: gate.Stage = gate.Stage.PUBLISH,
    ) -> gate.GateInput:
        return gate.GateInput(
            post=self.post,
            account_name=account,
            account=self.accounts.get(account),
            token=self.token,
            certificates=self.certs,
            revocations=self.revocations,
            root_public_key=self.root_pub,
            subjects=self.subjects,
            consents=self.consents,
            settings=self.settings,
            now=now,
            stage=stage,
            used=self.used,
        )

    def codes(self, account: str = "stmarys-x", **kw: Any) -> set[str]:
        return {f.code for f in gate.blocking(gate.evaluate(self.inputs(account, **kw)))}
