"""Live state survives the process (JSON per platform, atomic), and faults fire as asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from publisher.connectors import ConnectorSettings, RenderedPost, make_connector
from publisher.connectors.loopback import LoopbackAdapter, SandboxEscape, mount_sandbox
from publisher.sandbox import Sandbox
from publisher.sandbox.faults import Fault, FaultTable

SETTINGS = ConnectorSettings(timeout=5.0)


def test_live_posts_survive_a_restart_and_are_seen_by_a_second_sandbox(tmp_path: Path) -> None:
    data = tmp_path / "sb"
    with Sandbox(data) as first:
        creds = first.provision_account("x", "persist")
        ref = make_connector("x", creds, settings=SETTINGS, sandbox_port=first.port).publish(
            RenderedPost("kept", (), "m")
        )
        with Sandbox(data) as second:  # another process would see the same files
            assert [p["id"] for p in second.live("x", creds["account_id"])] == [ref.platform_id]
            connector = make_connector("x", creds, settings=SETTINGS, sandbox_port=second.port)
            assert connector.lookup(ref) == "live"
            connector.delete(ref)
        assert first.live("x", creds["account_id"]) == []  # reloaded from the file the second wrote
    saved = json.loads((data / "x.json").read_text(encoding="utf-8"))
    assert saved["posts"][ref.platform_id]["live"] is False
    assert not [p for p in data.iterdir() if p.name.endswith(".tmp")]


def test_fault_times_and_rate() -> None:
    table = FaultTable(seed=1)
    table.add(Fault("x", "create", "500", times=2, rate=None, seconds=0))
    assert [table.take("x", "create") is not None for _ in range(3)] == [True, True, False]
    table.add(Fault("x", "*", "503", times=None, rate=0.5, seconds=0))
    hits = sum(table.take("x", "get") is not None for _ in range(400))
    assert 120 < hits < 280
    with pytest.raises(ValueError, match="unknown fault"):
        table.add(Fault("x", "create", "explode", times=1, rate=None, seconds=0))


def test_inject_checks_the_platform_and_port_needs_start(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    with pytest.raises(RuntimeError):
        _ = sandbox.port
    with pytest.raises(ValueError, match="unknown platform"):
        sandbox.inject("myspace", "create", "500")


def test_sandbox_mode_refuses_any_other_host(sandbox: Sandbox) -> None:
    session = requests.Session()
    mount_sandbox(session, LoopbackAdapter(sandbox.port), ("api.x.com",))
    with pytest.raises(SandboxEscape):
        session.get("https://example.org/", timeout=5)
    with pytest.raises(SandboxEscape):
        session.get("http://graph.facebook.com/v26.0/me", timeout=5)


def test_instagram_session_from_provisioning_is_restored_without_a_password_login(sandbox: Sandbox) -> None:
    saved: list[str] = []
    creds = sandbox.provision_account("instagram", "restore")
    connector = make_connector(
        "instagram",
        creds,
        settings=ConnectorSettings(timeout=5.0, instagram_pause=0.0, instagram_request_delay=0.0),
        sandbox_port=sandbox.port,
        save_session=saved.append,
    )
    assert connector.find_recent(RenderedPost("none", (), "m")) is None
    endpoints = [r["endpoint"] for r in sandbox.request_log() if r["platform"] == "instagram"]
    assert endpoints[0] == "current_user"
    assert "?" not in endpoints
    assert saved
    assert json.loads(saved[-1])["authorization_data"]["ds_user_id"] == creds["account_id"]
    again: list[str] = []
    restored = make_connector(
        "instagram",
        {**creds, "session": saved[-1]},
        settings=ConnectorSettings(timeout=5.0, instagram_pause=0.0, instagram_request_delay=0.0),
        sandbox_port=sandbox.port,
        save_session=again.append,
    )
    assert restored.find_recent(RenderedPost("none", (), "m")) is None
    assert again == []  # the same device and session: nothing new to store
