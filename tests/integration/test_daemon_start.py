"""When the daemon starts it makes the connectors its deliveries due soon will need, so the first
posts due after a start do not wait for them (and for their platform libraries' import)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from publisher.config import AccountConfig
from publisher.daemon import PREPARE_AHEAD, Daemon
from publisher.platforms import Platforms
from publisher.queue.settings import QueueSettings

from .test_daemon_review import CS, running

LONDON = ZoneInfo("Europe/London")


def _account(platforms: Platforms, name: str) -> AccountConfig:
    account = platforms.config.account(name)
    assert account is not None
    return account


def test_the_daemon_makes_the_connectors_of_accounts_with_deliveries_due_soon_when_it_starts(tmp_path: Path) -> None:
    with running(tmp_path / "w") as (w, _sb, p):
        w.post(accounts=["stmarys-x", "stmarys-instagram"])  # due in a second
        later = w.svc.now() + PREPARE_AHEAD + timedelta(minutes=5)
        w.post(accounts=["stmarys-facebook"], at=later.astimezone(LONDON).strftime("%Y-%m-%d %H:%M:%S"))
        for name in ("stmarys-x", "stmarys-facebook"):
            p.credentials(_account(p, name))  # stored: the emulators provision them
        instagram = _account(p, "stmarys-instagram")
        assert not w.svc.vault().has(instagram.secret)
        with Daemon(w.svc, QueueSettings.load(w.config_path), p):
            # due soon, credentials stored: made; no credentials: left to its first post,
            # nothing provisioned; credentials but due only later: not made
            assert sorted(p._connectors) == ["stmarys-x"]
            assert not w.svc.vault().has(instagram.secret)


def test_an_account_whose_connector_cannot_be_made_is_logged_and_the_others_are_prepared(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running(tmp_path / "w") as (w, _sb, p):
        w.post()  # on every account
        for name in ("stmarys-x", "stmarys-instagram"):
            p.credentials(_account(p, name))
        instagram = _account(p, "stmarys-instagram")
        damaged = {**json.loads(p.vault.get(instagram.secret)), "session": "{not json"}
        p.vault.set(instagram.secret, json.dumps(damaged).encode())
        with (
            caplog.at_level(logging.WARNING, "publisher.platforms"),
            Daemon(w.svc, QueueSettings.load(w.config_path), p),
        ):
            assert sorted(p._connectors) == ["stmarys-x"]  # the daemon started all the same
        (record,) = [r for r in caplog.records if getattr(r, "event", "") == "connector_unprepared"]
        assert (record.account, record.error) == ("stmarys-instagram", "JSONDecodeError")  # type: ignore[attr-defined]
        assert "not json" not in caplog.text


def test_without_emulators_given_no_sandbox_account_is_prepared_and_none_is_started(tmp_path: Path) -> None:
    with running(tmp_path / "w") as (w, _sb, p):
        p.credentials(_account(p, "stmarys-x"))  # stored by the emulators given to `p`
        w.post(accounts=["stmarys-x"])
        lazy = Platforms(w.svc.config, w.svc.vault(), CS)  # none given: it would start its own on first use
        with lazy, Daemon(w.svc, QueueSettings.load(w.config_path), lazy):
            assert lazy._connectors == {} and lazy._sandbox is None
