"""Platform connectors behind one Protocol (see `base.Connector` for the contract).

`import publisher.connectors` imports no platform SDK: `make_connector` imports the one
platform module it needs (tweepy ~0.25 s, facebook-sdk ~0.25 s, instagrapi ~0.7 s).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from publisher.connectors.base import Connector, MediaItem, Presence, PublishedRef, RenderedPost
from publisher.errors import AuthFailed

__all__ = [
    "Connector",
    "ConnectorSettings",
    "MediaItem",
    "Presence",
    "PublishedRef",
    "RenderedPost",
    "make_connector",
]

REQUIRED_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "x": ("consumer_key", "consumer_secret", "access_token", "access_token_secret"),
    "facebook": ("page_id", "access_token"),
    "instagram": ("username", "password"),
}


@dataclass(frozen=True)
class ConnectorSettings:
    """Network behaviour shared by the connectors.

    timeout: seconds for every HTTP call (connect and read).
    graph_version: the Graph API version put in every Facebook path.
    instagram_pause: seconds between uploading Instagram photos and configuring the post (the
        app waits for processing; instagrapi hard-codes 3 s). 0 in tests.
    instagram_request_delay: instagrapi's sleep before each private call (its `request_timeout`).
    """

    timeout: float = 30.0
    graph_version: str = "v26.0"
    instagram_pause: float = 3.0
    instagram_request_delay: float = 1.0

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError("timeout must be positive")
        if not self.graph_version.startswith("v") or "." not in self.graph_version:
            raise ValueError(f"graph_version must look like 'v26.0', not {self.graph_version!r}")
        if self.instagram_pause < 0 or self.instagram_request_delay < 0:
            raise ValueError("Instagram delays cannot be negative")


def make_connector(
    platform: str,
    credentials: Mapping[str, str],
    *,
    settings: ConnectorSettings,
    sandbox_port: int | None,
    save_session: Callable[[str], None] | None = None,
) -> Connector:
    """The connector for one account. `sandbox_port`: route all traffic to the local emulators
    on that port (never set in production). `save_session`: Instagram calls it with the new
    session JSON whenever the session changes, so the caller can store it encrypted."""
    missing = [key for key in REQUIRED_CREDENTIALS.get(platform, ()) if not credentials.get(key)]
    if platform not in REQUIRED_CREDENTIALS:
        raise ValueError(f"unknown platform {platform!r}; one of {sorted(REQUIRED_CREDENTIALS)}")
    if missing:
        raise AuthFailed(
            platform, f"the account's credentials lack {', '.join(missing)}: store them with 'publisher secrets set'"
        )
    if platform == "x":
        from publisher.connectors.x import XConnector

        return XConnector(credentials, settings=settings, sandbox_port=sandbox_port)
    if platform == "facebook":
        from publisher.connectors.facebook import FacebookConnector

        return FacebookConnector(credentials, settings=settings, sandbox_port=sandbox_port)
    from publisher.connectors.instagram import InstagramConnector

    return InstagramConnector(credentials, settings=settings, sandbox_port=sandbox_port, save_session=save_session)
