from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from publisher.connectors.loopback import SANDBOX_HOSTS, LoopbackAdapter, mount_sandbox
from publisher.sandbox import Sandbox


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox") as running:
        yield running


@pytest.fixture
def http(sandbox: Sandbox) -> requests.Session:
    """A plain session routed to the emulators (for requests the connectors would never send)."""
    session = requests.Session()
    mount_sandbox(session, LoopbackAdapter(sandbox.port), SANDBOX_HOSTS)
    return session


def jpeg(width: int = 600, height: int = 600, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buffer, fmt)
    return buffer.getvalue()
