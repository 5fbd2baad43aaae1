"""Fixtures: one sandbox per module, a fresh sandbox account per test, images as approved bytes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from publisher.connectors import ConnectorSettings, MediaItem, RenderedPost, make_connector
from publisher.connectors.base import Connector
from publisher.sandbox import Sandbox

PLATFORMS = ("x", "facebook", "instagram")
# The endpoint name the emulator gives to the call that creates the post in `post_for`.
CREATE_ENDPOINT = {"x": "create", "facebook": "feed", "instagram": "configure"}
LOOKUP_ENDPOINT = {"x": "get", "facebook": "get", "instagram": "info"}
FAST = ConnectorSettings(timeout=5.0, instagram_pause=0.0, instagram_request_delay=0.0)


def image(width: int = 640, height: int = 640, fmt: str = "JPEG", colour: int = 0) -> MediaItem:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (colour % 256, 90, 160)).save(buffer, fmt)
    mime = "image/jpeg" if fmt == "JPEG" else f"image/{fmt.lower()}"
    return MediaItem.of(buffer.getvalue(), mime, width, height)


@dataclass
class Case:
    platform: str
    sandbox: Sandbox
    credentials: dict[str, str]
    account_id: str
    connector: Connector

    def make(self, settings: ConnectorSettings = FAST) -> Connector:
        return make_connector(self.platform, self.credentials, settings=settings, sandbox_port=self.sandbox.port)

    def live(self) -> list[dict[str, object]]:
        return self.sandbox.live(self.platform, self.account_id)

    def created(self) -> int:
        return self.sandbox.created_count(self.platform, self.account_id)


_counter = iter(range(1, 10**9))


def post_for(platform: str, text: str | None = None, images: int | None = None) -> RenderedPost:
    """A unique post the platform accepts: text only on X/Facebook, one photo on Instagram."""
    n = next(_counter)
    count = images if images is not None else (1 if platform == "instagram" else 0)
    media = tuple(image(colour=n + i) for i in range(count))
    return RenderedPost(text if text is not None else f"Sports day, post {n}", media, f"delivery-{n}")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(Path(tmp_path_factory.mktemp("sandbox")), seed=7) as running:
        yield running


@pytest.fixture(params=PLATFORMS)
def case(request: pytest.FixtureRequest, sandbox: Sandbox) -> Iterator[Case]:
    platform = str(request.param)
    credentials = sandbox.provision_account(platform, f"St Mary's {platform}")
    connector = make_connector(platform, credentials, settings=FAST, sandbox_port=sandbox.port)
    yield Case(platform, sandbox, credentials, credentials["account_id"], connector)
    sandbox.clear_faults()
