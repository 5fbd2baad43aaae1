"""Send a platform library's HTTPS traffic to the local sandbox emulators instead.

Mounted on the library's own `requests.Session` only when a sandbox port is configured;
production never mounts it. The real library code (OAuth signing, JSON shapes, error
parsing) still runs; only the transport's destination changes. The original host travels in
the `X-Original-Host` header so one emulator server can route by platform, and an OAuth 1.0a
signature (made over the real https URL) can be checked there.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

SANDBOX_HOSTS: frozenset[str] = frozenset(
    {
        "api.twitter.com",
        "api.x.com",
        "upload.twitter.com",
        "upload.x.com",
        "graph.facebook.com",
        "i.instagram.com",
        "b.i.instagram.com",
        "www.instagram.com",
    }
)


class SandboxEscape(requests.exceptions.InvalidURL):
    """A request in sandbox mode aimed at a host the sandbox does not emulate."""


class LoopbackAdapter(HTTPAdapter):
    """Rewrites https://<platform host>/... to http://127.0.0.1:<port>/... (X-Original-Host kept).

    Records (method, url, timeout) of every request it sends, so a test can check that every
    call the libraries make carries a timeout.
    """

    def __init__(self, port: int, **kwargs: Any) -> None:
        self.port = port
        self.sent: list[tuple[str, str, object]] = []
        self._lock = threading.Lock()
        super().__init__(**kwargs)

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        parts = urllib.parse.urlsplit(request.url or "")
        if parts.hostname not in SANDBOX_HOSTS:
            raise SandboxEscape(f"sandbox mode: refusing to contact {parts.hostname!s}")
        with self._lock:
            self.sent.append((str(request.method), f"{parts.netloc}{parts.path}", kwargs.get("timeout")))
        request.headers["X-Original-Host"] = parts.netloc
        request.url = urllib.parse.urlunsplit(("http", f"127.0.0.1:{self.port}", parts.path, parts.query, ""))
        kwargs["verify"] = False
        kwargs["proxies"] = {}
        return super().send(request, **kwargs)


class DenyAdapter(HTTPAdapter):
    """Mounted on http:// and https:// in sandbox mode: anything not rewritten is refused."""

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        host = urllib.parse.urlsplit(request.url or "").hostname
        raise SandboxEscape(f"sandbox mode: refusing to contact {host!s}")


def mount_sandbox(session: requests.Session, adapter: LoopbackAdapter, hosts: Iterable[str]) -> None:
    """Route `hosts` to the emulator and refuse every other destination on this session."""
    deny = DenyAdapter()
    session.mount("https://", deny)
    session.mount("http://", deny)
    for host in hosts:
        if host not in SANDBOX_HOSTS:
            raise ValueError(f"{host} is not emulated by the sandbox")
        session.mount(f"https://{host}/", adapter)
    session.trust_env = False


def enforce_timeout(session: requests.Session, timeout: float) -> None:
    """Give every request made through `session` a timeout unless the caller set one.

    tweepy, facebook-sdk (by default) and instagrapi's private API call `session.request`
    without a timeout; a stalled connection would block a worker forever.
    """
    original = session.request

    def request(method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = timeout
        return original(method, url, *args, **kwargs)

    session.request = request  # type: ignore[method-assign]


def header_lookup(headers: Mapping[str, str], *names: str) -> str | None:
    """First present header among `names` (requests headers are case-insensitive)."""
    for name in names:
        value = headers.get(name)
        if value:
            return value
    return None
