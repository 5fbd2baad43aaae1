"""300 deliveries across the three platforms, due now, through the real connectors and the
emulators injecting 500s, 429s with reset headers and accepted-then-dropped connections."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from publisher.connectors import ConnectorSettings
from publisher.daemon import Daemon
from publisher.platforms import Platforms
from publisher.queue.settings import QueueSettings
from publisher.sandbox import Sandbox
from tests.contract.queue.world import World, build_world, check_exactly_once, log_bodies

POSTS = 100  # x 3 accounts = 300 deliveries


# The calls that publish and reconcile. Instagram's session check (current_user) is left alone:
# the connector reads any failure there as "log in again by hand" (AuthFailed), by design.
ENDPOINTS = {
    "x": ("create", "upload", "user_tweets", "me"),
    "facebook": ("feed", "photos", "list_feed"),
    "instagram": ("rupload", "configure", "feed"),
}


def inject_faults(sandbox: Sandbox) -> None:
    """Per request: 5 % answered 500, 5 % 429 with reset headers, 2 % accepted then dropped."""
    for platform, endpoints in ENDPOINTS.items():
        for endpoint in endpoints:
            sandbox.inject(platform, endpoint, "500", rate=0.05)
            sandbox.inject(platform, endpoint, "429", rate=0.05, seconds=1)
            sandbox.inject(platform, endpoint, "accept_drop", rate=0.02)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[World, Sandbox, Platforms]]:
    w = build_world(tmp_path / "w")
    settings = QueueSettings.load(w.config_path)
    cs = ConnectorSettings(timeout=3.0, instagram_pause=0.0, instagram_request_delay=0.0)
    with Sandbox(w.svc.config.data_dir / "sandbox", seed=11) as sb:
        platforms = Platforms(w.svc.config, w.svc.vault(), cs, sandbox=sb)
        yield w, sb, platforms
        platforms.close()
    del settings
    w.svc.close()


@pytest.mark.slow
def test_300_deliveries_through_faults_are_each_live_exactly_once(world: tuple[World, Sandbox, Platforms]) -> None:
    w, sb, platforms = world
    for _ in range(POSTS):
        w.post()
    ids = {name: platforms.sandbox_account_id(name) for name, _ in w.accounts}
    inject_faults(sb)
    started = time.monotonic()
    with Daemon(w.svc, QueueSettings.load(w.config_path), platforms) as daemon:
        left = daemon.drain(until=w.svc.now(), timeout=150)
    assert left == 0, f"{left} deliveries unsettled after {time.monotonic() - started:.0f} s"
    counts = check_exactly_once(w.svc, sb, ids)
    assert counts == {"live": 3 * POSTS}
    faults = [e for e in sb.request_log()]
    assert len(faults) > 3 * POSTS  # retries and look-ups happened
    assert len(log_bodies(w.svc, "post_published")) == 3 * POSTS
    reconciled = [b for b in log_bodies(w.svc, "post_published") if b["reconciled"]]
    assert reconciled, "no accepted-then-dropped publish was found again by reconciliation"
