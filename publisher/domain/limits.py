"""The platforms' published limits, as checked in research/connectors.md (section 4).

Pure data: the gate reads them for PLATFORM_LIMIT, the connectors and the sandbox
emulators enforce the same numbers, so a post the gate passes is one the platform takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Platform(StrEnum):
    X = "x"
    FACEBOOK = "facebook"
    INSTAGRAM = "instagram"


@dataclass(frozen=True)
class PlatformLimits:
    platform: Platform
    max_text: int  # characters; X counts weighted characters (twitter-text)
    max_images: int
    max_image_bytes: int
    image_types: frozenset[str]  # MIME types the platform accepts
    min_aspect: float | None = None  # width / height
    max_aspect: float | None = None
    needs_media: bool = False


LIMITS: dict[Platform, PlatformLimits] = {
    Platform.X: PlatformLimits(
        Platform.X,
        max_text=280,
        max_images=4,
        max_image_bytes=5 * 1024 * 1024,
        image_types=frozenset({"image/jpeg", "image/png"}),
    ),
    Platform.FACEBOOK: PlatformLimits(
        Platform.FACEBOOK,
        max_text=63_206,
        max_images=10,
        max_image_bytes=10 * 1024 * 1024,
        image_types=frozenset({"image/jpeg", "image/png"}),
    ),
    Platform.INSTAGRAM: PlatformLimits(
        Platform.INSTAGRAM,
        max_text=2_200,
        max_images=10,
        max_image_bytes=8 * 1024 * 1024,
        image_types=frozenset({"image/jpeg"}),
        min_aspect=4 / 5,
        max_aspect=1.91,
        needs_media=True,
    ),
}
