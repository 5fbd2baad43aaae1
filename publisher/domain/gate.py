"""The gate: may this post go out on this account now? A pure function that fails closed.

`evaluate(GateInput)` runs every rule in RULES and returns every finding. A post publishes
only when no finding is blocking. An empty rule list rejects. Each rule is independent and
returns its own findings, so new screens (OCR, face counts) are added as rules.

Codes are stable (DESIGN.md): APPROVAL_MISSING, APPROVAL_SIGNATURE_INVALID,
APPROVAL_CONTENT_MISMATCH, APPROVAL_EXPIRED, OUTSIDE_APPROVED_WINDOW, APPROVAL_ALREADY_USED,
APPROVER_NOT_CERTIFIED, APPROVER_NOT_AUTHORISED_FOR_SCHOOL, APPROVER_REVOKED, SELF_APPROVAL,
CONSENT_MISSING, CONSENT_WITHDRAWN, CONSENT_EXPIRED, SUBJECT_NEVER_PUBLISH,
NAME_WITHOUT_CONSENT, MEDIA_METADATA_PRESENT, MEDIA_DEVICE_UNKNOWN, PLATFORM_LIMIT,
POST_CANCELLED, PUBLISHING_PAUSED, plus ACCOUNT_UNKNOWN, TEXT_DISGUISED and NO_RULES.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from publisher.domain import approval as ap
from publisher.domain import consent, screening
from publisher.domain.limits import LIMITS, Platform
from publisher.domain.manifest import manifest_sha256
from publisher.domain.model import (
    Account,
    ApprovalClaims,
    Certificate,
    ConsentEvent,
    Finding,
    PolicySettings,
    Post,
    Revocation,
    Scope,
    Severity,
    Subject,
    same_person,
)


class Stage(StrEnum):
    SCREEN = "screen"  # drafting and `post show`: times are judged at the scheduled time
    APPROVE = "approve"  # the approver's own check of the token just signed
    PUBLISH = "publish"  # the daemon, at the moment of posting: times are judged at now


@dataclass(frozen=True)
class GateInput:
    post: Post
    account_name: str
    account: Account | None
    token: str | None
    certificates: Sequence[ap.Signed]
    revocations: Sequence[ap.Signed]
    root_public_key: bytes | None
    subjects: Mapping[str, Subject]  # every subject the Trust knows (all schools), for name screening
    consents: Sequence[ConsentEvent]
    settings: PolicySettings
    now: datetime
    stage: Stage = Stage.PUBLISH
    tz_name: str = "Europe/London"
    used: frozenset[tuple[str, str]] = frozenset()  # (jti, account) already published

    @property
    def when(self) -> datetime:
        """The moment judged: now when publishing; before that, the scheduled time (or now, if later)."""
        return self.now if self.stage is Stage.PUBLISH else max(self.now, self.post.scheduled_at)


@dataclass
class _Approval:
    """What the approval rules learn, shared by the approval rules of one evaluation."""

    claims: ApprovalClaims | None = None
    certificate: Certificate | None = None
    findings: list[Finding] = field(default_factory=list)


def _f(code: str, message: str, gi: GateInput, subject_id: str | None = None, warn: bool = False) -> Finding:
    severity = Severity.WARNING if warn else Severity.BLOCKING
    return Finding(code, message, severity, subject_id, gi.account_name)


def _verified_certificates(gi: GateInput) -> dict[str, Certificate]:
    out: dict[str, Certificate] = {}
    if gi.root_public_key is None:
        return out
    for signed in gi.certificates:
        try:
            cert = ap.verify_certificate(gi.root_public_key, signed)
        except ap.SignatureProblem:
            continue  # not by the pinned root: ignored (reported by `trust list`)
        out[cert.key_id] = cert
    return out


def _revoked(gi: GateInput, kid: str) -> Revocation | None:
    if gi.root_public_key is None:
        return None
    for signed in gi.revocations:
        try:
            rev = ap.verify_revocation(gi.root_public_key, signed)
        except ap.SignatureProblem:
            continue
        if rev.key_id == kid and rev.revoked_at <= gi.now:
            return rev
    return None


def _approval(gi: GateInput) -> _Approval:
    out = _Approval()
    if not gi.token:
        out.findings.append(_f("APPROVAL_MISSING", "The post has no signed approval yet", gi))
        return out
    try:
        kid = ap.token_key_id(gi.token)
    except ap.SignatureProblem as exc:
        out.findings.append(_f("APPROVAL_SIGNATURE_INVALID", f"The approval token is unreadable: {exc}", gi))
        return out
    if gi.root_public_key is None:
        out.findings.append(_f("APPROVER_NOT_CERTIFIED", "No Trust root key is pinned in the config", gi))
        return out
    cert = _verified_certificates(gi).get(kid)
    if cert is None:
        out.findings.append(
            _f(
                "APPROVER_NOT_CERTIFIED",
                f"Key {kid} has no certificate signed by the pinned Trust root",
                gi,
            )
        )
        return out
    try:
        out.claims = ap.verify_approval(gi.token, cert.public_key)
    except ap.SignatureProblem as exc:
        out.findings.append(_f("APPROVAL_SIGNATURE_INVALID", f"The approval by {cert.name} is invalid: {exc}", gi))
        return out
    out.certificate = cert
    return out


def rule_approval(gi: GateInput, state: _Approval) -> Iterator[Finding]:
    yield from state.findings
    claims, cert = state.claims, state.certificate
    if claims is None or cert is None:
        return
    post = gi.post
    if claims.post_id != post.id:
        yield _f("APPROVAL_CONTENT_MISMATCH", f"The approval is for post {claims.post_id}, not {post.id}", gi)
    elif claims.manifest_sha256 != manifest_sha256(post):
        yield _f(
            "APPROVAL_CONTENT_MISMATCH",
            "The post's text, media, accounts or subjects differ from what was approved",
            gi,
        )
    if gi.account_name not in claims.accounts:
        yield _f("APPROVAL_CONTENT_MISMATCH", f"Account {gi.account_name} is not in the approval", gi)
    when = gi.when
    if when > claims.expires:
        yield _f("APPROVAL_EXPIRED", f"The approval expired at {claims.expires:%Y-%m-%d %H:%M} UTC", gi)
    if not claims.not_before <= when <= claims.not_after:
        yield _f(
            "OUTSIDE_APPROVED_WINDOW",
            f"{when:%Y-%m-%d %H:%M} UTC is outside the approved window "
            f"{claims.not_before:%Y-%m-%d %H:%M}-{claims.not_after:%Y-%m-%d %H:%M} UTC",
            gi,
        )
    if (claims.jti, gi.account_name) in gi.used:
        yield _f("APPROVAL_ALREADY_USED", f"Approval {claims.jti} was already used on {gi.account_name}", gi)
    yield from _certificate_rules(gi, claims, cert)


def _certificate_rules(gi: GateInput, claims: ApprovalClaims, cert: Certificate) -> Iterator[Finding]:
    if not cert.valid_at(claims.issued_at) or not cert.valid_at(gi.now):
        yield _f(
            "APPROVER_NOT_CERTIFIED",
            f"{cert.name}'s certificate is valid {cert.valid_from:%Y-%m-%d} to {cert.valid_until:%Y-%m-%d}",
            gi,
        )
    if gi.post.school not in cert.schools or claims.school != gi.post.school:
        yield _f(
            "APPROVER_NOT_AUTHORISED_FOR_SCHOOL",
            f"{cert.name} ({cert.role.value}) is not certified for school {gi.post.school}",
            gi,
        )
    rev = _revoked(gi, cert.key_id)
    if rev is not None:
        yield _f("APPROVER_REVOKED", f"{cert.name}'s key was revoked on {rev.revoked_at:%Y-%m-%d}", gi)
    if same_person(cert.name, gi.post.author):
        yield _f("SELF_APPROVAL", f"{cert.name} wrote this post and cannot also approve it", gi)


def rule_state(gi: GateInput) -> Iterator[Finding]:
    if gi.post.cancelled:
        yield _f("POST_CANCELLED", "The post was cancelled", gi)
    if gi.settings.paused:
        yield _f("PUBLISHING_PAUSED", "Publishing is paused (emergency stop): 'publisher resume' restarts it", gi)
    if gi.account is None:
        yield _f("ACCOUNT_UNKNOWN", f"No account named {gi.account_name} is configured", gi)
    elif gi.account.school != gi.post.school:
        yield _f(
            "ACCOUNT_UNKNOWN", f"Account {gi.account_name} belongs to {gi.account.school}, not {gi.post.school}", gi
        )


_REASON = {
    consent.ConsentStatus.MISSING: ("CONSENT_MISSING", "has no {scope} consent for {platform}"),
    consent.ConsentStatus.WITHDRAWN: ("CONSENT_WITHDRAWN", "'s {scope} consent for {platform} was withdrawn"),
    consent.ConsentStatus.EXPIRED: ("CONSENT_EXPIRED", "'s {scope} consent for {platform} has expired"),
}


def _consent_finding(gi: GateInput, subject: Subject, platform: Platform, scope: Scope) -> Finding | None:
    st = consent.status(gi.consents, subject.id, platform, scope, gi.when, gi.tz_name)
    if st is consent.ConsentStatus.GRANTED:
        return None
    code, text = _REASON[st]
    sep = "" if text.startswith("'") else " "
    return _f(
        code,
        f"{subject.display_name} ({subject.id}){sep}{text.format(scope=scope.value, platform=platform.value)}",
        gi,
        subject.id,
    )


def rule_consent(gi: GateInput) -> Iterator[Finding]:
    if gi.account is None:
        return
    platform = gi.account.platform
    for featured in gi.post.featured:
        subject = gi.subjects.get(featured.subject_id)
        if subject is None:
            yield _f(
                "CONSENT_MISSING", f"Subject {featured.subject_id} is not in the register", gi, featured.subject_id
            )
            continue
        if subject.never_publish:
            yield _f(
                "SUBJECT_NEVER_PUBLISH",
                f"{subject.display_name} ({subject.id}) is on the never-publish list",
                gi,
                subject.id,
            )
        for scope in sorted(featured.scopes):
            finding = _consent_finding(gi, subject, platform, scope)
            if finding is not None:
                yield finding


def named_subjects(text: str, subjects: Mapping[str, Subject]) -> list[Subject]:
    """Every subject one of whose names appears in the text (see publisher.domain.screening)."""
    return [s for s in subjects.values() if screening.mentions(text, s.screen_names)]


def rule_text(gi: GateInput) -> Iterator[Finding]:
    for what in screening.disguises(gi.post.text):
        yield _f("TEXT_DISGUISED", f"The text contains {what}, which can hide or disguise words: retype it", gi)


def rule_names(gi: GateInput) -> Iterator[Finding]:
    if gi.account is None:
        return
    platform = gi.account.platform
    for subject in named_subjects(gi.post.text, gi.subjects):
        if subject.never_publish:
            yield _f(
                "SUBJECT_NEVER_PUBLISH",
                f"The text names {subject.display_name} ({subject.id}), who is on the never-publish list",
                gi,
                subject.id,
            )
            continue
        st = consent.status(gi.consents, subject.id, platform, Scope.NAME, gi.when, gi.tz_name)
        if st is not consent.ConsentStatus.GRANTED:
            yield _f(
                "NAME_WITHOUT_CONSENT",
                f"The text names {subject.display_name} ({subject.id}), who has no current name consent "
                f"for {platform.value} ({st.value})",
                gi,
                subject.id,
            )


def rule_media(gi: GateInput) -> Iterator[Finding]:
    for i, m in enumerate(gi.post.media, 1):
        if not m.metadata_clean:
            yield _f("MEDIA_METADATA_PRESENT", f"Image {i} still carries metadata (EXIF/XMP/IPTC)", gi)
        if not m.device_known:
            why = "has no camera data" if m.device_known is None else "comes from a device not approved by the DFO"
            yield _f("MEDIA_DEVICE_UNKNOWN", f"Image {i} {why}", gi, warn=not gi.settings.device_unknown_blocks)


def rule_limits(gi: GateInput) -> Iterator[Finding]:
    if gi.account is None:
        return
    limits = LIMITS[gi.account.platform]
    name = gi.account.platform.value
    length = text_length(gi.post.text, gi.account.platform)
    if length > limits.max_text:
        yield _f("PLATFORM_LIMIT", f"The text is {length} characters; {name} allows {limits.max_text}", gi)
    if not gi.post.text.strip() and not gi.post.media:
        yield _f("PLATFORM_LIMIT", "The post has neither text nor images", gi)
    if limits.needs_media and not gi.post.media:
        yield _f("PLATFORM_LIMIT", f"{name} posts need at least one image", gi)
    if len(gi.post.media) > limits.max_images:
        yield _f("PLATFORM_LIMIT", f"{len(gi.post.media)} images; {name} allows {limits.max_images}", gi)
    if gi.account.platform is Platform.INSTAGRAM:
        yield from _instagram_text(gi)
    for i, m in enumerate(gi.post.media, 1):
        if m.mime not in limits.image_types:
            yield _f(
                "PLATFORM_LIMIT", f"Image {i} is {m.mime}; {name} takes {', '.join(sorted(limits.image_types))}", gi
            )
        if m.size > limits.max_image_bytes:
            yield _f("PLATFORM_LIMIT", f"Image {i} is {m.size} bytes; {name} allows {limits.max_image_bytes}", gi)
        ratio = m.width / m.height if m.height else 0.0
        if (
            limits.min_aspect is not None
            and limits.max_aspect is not None
            and not limits.min_aspect - 0.005 <= ratio <= limits.max_aspect + 0.005
        ):
            yield _f(
                "PLATFORM_LIMIT", f"Image {i} is {m.width}x{m.height}; {name} takes aspect ratios 4:5 to 1.91:1", gi
            )


def _instagram_text(gi: GateInput) -> Iterator[Finding]:
    tags = len(re.findall(r"(?<!\w)#\w+", gi.post.text))
    mentions = len(re.findall(r"(?<!\w)@\w+", gi.post.text))
    if tags > 30:
        yield _f("PLATFORM_LIMIT", f"{tags} hashtags; instagram allows 30", gi)
    if mentions > 20:
        yield _f("PLATFORM_LIMIT", f"{mentions} @mentions; instagram allows 20", gi)


def text_length(text: str, platform: Platform) -> int:
    if platform is Platform.X:
        from twitter_text import parse_tweet  # X's own weighting: URLs 23, CJK and emoji 2

        return int(parse_tweet(text).weightedLength)
    return len(text)


Rule = Callable[[GateInput], Iterator[Finding]]
RULES: tuple[Rule, ...] = (rule_state, rule_consent, rule_names, rule_text, rule_media, rule_limits)


def evaluate(gi: GateInput, rules: Sequence[Rule] = RULES) -> list[Finding]:
    """Every finding for publishing gi.post on gi.account_name; fails closed."""
    if not rules:
        return [_f("NO_RULES", "No rules are configured: nothing may be published", gi)]
    findings = list(rule_approval(gi, _approval(gi)))
    for rule in rules:
        findings.extend(rule(gi))
    return findings


def blocking(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.blocking]
