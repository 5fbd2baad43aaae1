"""The connector port: what the daemon needs from a social platform, and nothing more.

A connector turns one approved, rendered post into a live post on one account, and takes it
down again. It never decides *whether* to publish (that is the gate's job) and never retries
on its own: every failure is raised as one of the project's ConnectorError subclasses and the
queue decides what to do next.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol

from publisher.errors import Rejected

if TYPE_CHECKING:
    from publisher.domain.limits import PlatformLimits

Presence = Literal["live", "gone"]


@dataclass(frozen=True)
class MediaItem:
    """One image exactly as approved: these bytes, and no others, are uploaded."""

    data: bytes
    mime: str
    sha256: str
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError("image width and height must be positive")
        if len(self.sha256) != 64:
            raise ValueError("sha256 must be 64 hex digits")

    def __repr__(self) -> str:
        return f"MediaItem(mime={self.mime!r}, bytes={len(self.data)}, sha256={self.sha256[:12]}...)"

    @classmethod
    def of(cls, data: bytes, mime: str, width: int, height: int) -> MediaItem:
        return cls(data, mime, hashlib.sha256(data).hexdigest(), width, height)


@dataclass(frozen=True)
class RenderedPost:
    """The exact text and media of one delivery (one post on one account).

    `marker` is a stable id of the delivery (its uuid). None of the three platforms stores an
    invisible field a reader cannot see, so the connectors do NOT send the marker anywhere: they
    reconcile by exact text match (after the platform's own normalisation, see each connector)
    and the same number of images among the account's most recent posts. The marker is kept
    for logs and for a future connector that can store it.
    """

    text: str
    media: tuple[MediaItem, ...]
    marker: str


@dataclass(frozen=True)
class PublishedRef:
    """Where a post went live: the platform's own id and its public address."""

    platform: str
    platform_id: str
    url: str


class Connector(Protocol):
    """One platform account (X, a Facebook Page, an Instagram account).

    Every method makes one or more network calls, each with a timeout, and raises only
    `publisher.errors.ConnectorError` subclasses (the SDK's exception is the `__cause__`):

    - `RateLimited(retry_after)`: the platform said 429 / a rate-limit code; wait that long.
    - `AuthFailed`: a person must act (token revoked or expired, challenge, two-factor prompt,
      billing / credits exhausted); the message says what to do. Never retry automatically.
    - `Rejected`: the platform refused this content for good (too long, too many images, wrong
      image type or shape, duplicate content, policy block). Retrying the same post will not help.
    - `Transient`: the request certainly did not take effect (never sent, connect failure,
      503 before processing, a failed read or delete that can be repeated safely).
    - `OutcomeUnknown`: a *publish* request may have reached the platform (read timeout or
      connection dropped after sending, 500 from the create call). The caller must call
      `find_recent` before any retry; a post is never published twice.

    Methods:

    - `publish(post) -> PublishedRef`: creates the post with `post.text` and the exact bytes of
      `post.media`. Not idempotent: on OutcomeUnknown reconcile with `find_recent`. Validates
      the media against `limits` first (count, type, aspect, sha256) and raises Rejected
      without any network call when they do not fit.
    - `delete(ref) -> None`: removes the post and confirms it is gone. Idempotent: deleting a
      post that is already gone is success.
    - `lookup(ref) -> "live" | "gone"`: whether the post is visible on the platform now.
    - `find_recent(post, since=None, exclude=()) -> PublishedRef | None`: the account's recent
      post with this text and image count, made at or after `since` (less a minute of clock
      skew) and whose id is not in `exclude` (posts already recorded for other deliveries), or
      None when the platform's answer shows it is certainly not there. Raises (OutcomeUnknown /
      Transient / ...) when the platform cannot answer.
    """

    platform: str
    limits: PlatformLimits

    def publish(self, post: RenderedPost) -> PublishedRef: ...

    def delete(self, ref: PublishedRef) -> None: ...

    def lookup(self, ref: PublishedRef) -> Presence: ...

    def find_recent(
        self, post: RenderedPost, since: datetime | None = None, exclude: Collection[str] = ()
    ) -> PublishedRef | None: ...


SKEW = timedelta(minutes=1)


def made_since(created: datetime | None, since: datetime | None) -> bool:
    """Whether a post the platform dates `created` can be the one sent at `since`. A post the
    platform does not date counts as a candidate (a missed match would publish twice)."""
    return since is None or created is None or created >= since - SKEW


def check_media(platform: str, post: RenderedPost, limits: PlatformLimits) -> None:
    """Raise Rejected when the media cannot be published as approved (no network call)."""
    if limits.needs_media and not post.media:
        raise Rejected(platform, "a post needs at least one image on this platform")
    if len(post.media) > limits.max_images:
        raise Rejected(platform, f"{len(post.media)} images; the platform takes at most {limits.max_images}")
    for number, item in enumerate(post.media, start=1):
        _check_item(platform, number, item, limits)


def _check_item(platform: str, number: int, item: MediaItem, limits: PlatformLimits) -> None:
    if hashlib.sha256(item.data).hexdigest() != item.sha256:
        raise Rejected(platform, f"image {number} is not the approved file (SHA-256 differs)")
    if item.mime not in limits.image_types or not _magic_matches(item.mime, item.data):
        allowed = ", ".join(sorted(limits.image_types))
        raise Rejected(platform, f"image {number} is {item.mime}; the platform takes {allowed} (not converted)")
    if len(item.data) > limits.max_image_bytes:
        raise Rejected(platform, f"image {number} is {len(item.data)} bytes; limit {limits.max_image_bytes}")
    aspect = item.width / item.height
    low, high = limits.min_aspect, limits.max_aspect
    if (low is not None and aspect < low - 1e-3) or (high is not None and aspect > high + 1e-3):
        raise Rejected(
            platform,
            f"image {number} is {item.width}x{item.height} (aspect {aspect:.2f}); the platform takes "
            f"{low or 0:.2f} (4:5) to {high or 0:.2f} (1.91:1): crop it and approve again "
            "(never cropped silently)",
        )


_MAGIC = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


def _magic_matches(mime: str, data: bytes) -> bool:
    prefixes = _MAGIC.get(mime)
    return prefixes is None or data.startswith(prefixes)
