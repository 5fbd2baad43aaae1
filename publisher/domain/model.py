"""The values the rules talk about. Frozen, valid once built, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from publisher.domain.limits import Platform


class SubjectKind(StrEnum):
    PUPIL = "pupil"
    STAFF = "staff"
    PARENT = "parent"
    GOVERNOR = "governor"


class Scope(StrEnum):
    IMAGE = "image"
    NAME = "name"


class Role(StrEnum):
    HEADTEACHER = "headteacher"
    NURSERY_MANAGER = "nursery-manager"
    TRUST_LINE_MANAGER = "trust-line-manager"


class ConsentAction(StrEnum):
    GRANT = "grant"
    WITHDRAW = "withdraw"


def _aware(value: datetime, what: str) -> None:
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware")


_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "rev"})


def _name_forms(name: str) -> set[str]:
    """A person's name as people and login systems write it: 'Jane Head', 'Head, Jane',
    'Mrs J Head', 'jane.head', 'jhead', 'headj'. Accents, case and look-alikes folded."""
    from publisher.domain.screening import fold

    words = [w for w in re.sub(r"[^\w\s]", " ", fold(name)).split() if w not in _TITLES]
    if not words:
        return set()
    forms = {" ".join(sorted(words)), "".join(words)}
    if len(words) >= 2:
        first, last = words[0], words[-1]
        forms |= {first + last, first[0] + last, last + first, last + first[0]}
    return forms


def same_person(a: str, b: str) -> bool:
    """Whether two recorded names may be the same person, for the maker-checker rule.

    Deliberately generous: a false match only refuses an approval (someone else approves);
    a missed match would let an author approve their own post.
    """
    fa, fb = _name_forms(a), _name_forms(b)
    if not fa or not fb:
        return False
    squashed_a = {f.replace(" ", "") for f in fa}
    squashed_b = {f.replace(" ", "") for f in fb}
    return bool(fa & fb) or bool(squashed_a & squashed_b)


@dataclass(frozen=True)
class Subject:
    id: str
    school: str
    kind: SubjectKind
    display_name: str
    aliases: tuple[str, ...] = ()
    never_publish: bool = False
    never_publish_reason: str = ""

    @property
    def screen_names(self) -> tuple[str, ...]:
        """Every name the text screen looks for: display name, its first word, aliases."""
        names = [self.display_name, *self.aliases]
        parts = self.display_name.split()
        if len(parts) > 1:
            names.append(parts[0])
        return tuple(dict.fromkeys(n.strip() for n in names if n.strip()))


@dataclass(frozen=True)
class ConsentEvent:
    subject_id: str
    platform: Platform
    scope: Scope
    action: ConsentAction
    at: datetime
    expires: date | None = None
    evidence: str = ""

    def __post_init__(self) -> None:
        _aware(self.at, "consent event time")


@dataclass(frozen=True)
class Featured:
    subject_id: str
    scopes: frozenset[Scope]

    def __post_init__(self) -> None:
        if not self.scopes:
            raise ValueError("a featured subject needs at least one scope (image or name)")


@dataclass(frozen=True)
class MediaRef:
    sha256: str
    mime: str
    size: int
    width: int
    height: int
    metadata_clean: bool = True
    device_known: bool | None = None  # None: no camera data in the original


@dataclass(frozen=True)
class Post:
    id: str
    school: str
    author: str
    text: str
    media: tuple[MediaRef, ...]
    featured: tuple[Featured, ...]
    accounts: tuple[str, ...]
    scheduled_at: datetime
    cancelled: bool = False

    def __post_init__(self) -> None:
        _aware(self.scheduled_at, "scheduled time")


@dataclass(frozen=True)
class Account:
    name: str
    school: str
    platform: Platform


@dataclass(frozen=True)
class Certificate:
    """An approver certificate whose signature by the pinned Trust root has been checked."""

    key_id: str
    public_key: bytes
    name: str
    role: Role
    schools: frozenset[str]
    valid_from: datetime
    valid_until: datetime
    serial: str

    def valid_at(self, when: datetime) -> bool:
        return self.valid_from <= when <= self.valid_until


@dataclass(frozen=True)
class Revocation:
    """A revocation whose signature by the pinned Trust root has been checked."""

    key_id: str
    revoked_at: datetime
    reason: str


@dataclass(frozen=True)
class ApprovalClaims:
    """The approval statement, as signed by the approver."""

    post_id: str
    school: str
    manifest_sha256: str
    accounts: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    expires: datetime
    issued_at: datetime
    jti: str
    key_id: str


@dataclass(frozen=True)
class PolicySettings:
    paused: bool = False
    device_unknown_blocks: bool = False
    max_media_bytes: int = 15 * 1024 * 1024


@dataclass(frozen=True)
class Severity:
    BLOCKING = "blocking"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    severity: str = Severity.BLOCKING
    subject_id: str | None = None
    account: str | None = None

    @property
    def blocking(self) -> bool:
        return self.severity == Severity.BLOCKING
