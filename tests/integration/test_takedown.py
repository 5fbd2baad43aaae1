"""Takedowns end to end through the real connectors and the sandbox emulators, the consent
withdrawal that triggers them, and the emergency stop."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from publisher.platforms import Platforms
from publisher.sandbox import Sandbox
from publisher.takedown import backoff, process_pending_takedowns
from tests.conftest import Workspace

from .helpers import Seeded, dump_sqlite, photo, seed
from .live import FAST, fast, go_live, live_on, service


@pytest.fixture
def s(workspace: Workspace) -> Seeded:
    seeded = seed(workspace)
    fast(workspace)
    return seeded


def _kinds(s: Seeded, kind: str) -> list[dict[str, object]]:
    return [e for e in json.loads(s.ws.ok("log", "show", "--kind", kind, "--json"))]


def _published(s: Seeded, text: str, accounts: tuple[str, ...], *extra: str) -> str:
    pid = s.draft(text, *extra, accounts=accounts)
    assert "Approved by" in s.approve(pid)
    go_live(s.ws, pid)
    return pid


def test_publish_then_takedown_end_to_end(s: Seeded) -> None:
    pid = _published(s, "Sports day!", ("stmarys-x", "stmarys-facebook"), "--subject", f"{s.amelia}:image")
    x_ids, fb_ids = live_on(s.ws, "stmarys-x"), live_on(s.ws, "stmarys-facebook")
    assert len(x_ids) == 1 and len(fb_ids) == 1

    out = s.ws.ok("takedown", pid, "--reason", "parent asked", "--requested-by", "Mrs Jones (mother)")
    assert out.count("taken down and confirmed gone") == 2, out
    assert live_on(s.ws, "stmarys-x") == [] and live_on(s.ws, "stmarys-facebook") == []

    requested, done = _kinds(s, "takedown_requested"), _kinds(s, "taken_down")
    assert len(requested) == 1 and requested[0]["body"]["post"] == pid  # type: ignore[index]
    assert "Mrs Jones" not in json.dumps(requested)  # sealed for the featured child, not in clear
    assert sorted(e["body"]["account"] for e in done) == ["stmarys-facebook", "stmarys-x"]  # type: ignore[index]
    assert requested[0]["seq"] < min(e["seq"] for e in done)  # type: ignore[type-var]

    s.ws.ok("sar", "export", s.amelia, "--out", str(s.ws.dir / "pack"))
    doc = json.loads((s.ws.dir / "pack" / "sar.json").read_text())
    post = next(p for p in doc["posts"] if p["id"] == pid)
    assert {d["status"] for d in post["deliveries"]} == {"taken_down"}
    assert all(d["taken_down_at"] for d in post["deliveries"])
    assert {t["status"] for t in post["takedowns"]} == {"done"}
    assert "taken down" in (s.ws.dir / "pack" / "index.html").read_text()
    assert s.ws.run("log", "verify").code == 0

    again = s.ws.run("takedown", pid, "--reason", "again", "--requested-by", "DPO")
    assert again.code == 1 and "already taken down" in again.err


def test_consent_withdrawal_for_instagram_takes_down_only_that_childs_instagram_posts(s: Seeded) -> None:
    s.ws.ok("consent", "grant", s.oliver, "--platform", "instagram", "--scope", "image", "--evidence", "SMA-9")
    img = str(photo(s.ws.dir / "a.jpg"))
    both = ("stmarys-instagram", "stmarys-facebook")
    hers = _published(s, "Art week", both, "--subject", f"{s.amelia}:image", "--media", img)
    his = _published(s, "Music week", ("stmarys-instagram",), "--subject", f"{s.oliver}:image", "--media", img)
    assert len(live_on(s.ws, "stmarys-instagram")) == 2

    out = s.ws.ok("consent", "withdraw", s.amelia, "--platform", "instagram", "--scope", "image", actor="DFO")
    assert "Taking down 1 live post(s) on instagram" in out
    assert f"Post {hers} on stmarys-instagram: taken down and confirmed gone" in out
    assert len(live_on(s.ws, "stmarys-instagram")) == 1  # Oliver's post stays
    assert len(live_on(s.ws, "stmarys-facebook")) == 1  # her Facebook post stays
    done = _kinds(s, "taken_down")
    assert [(e["body"]["post"], e["body"]["account"]) for e in done] == [(hers, "stmarys-instagram")]  # type: ignore[index]
    assert his not in json.dumps(done)


def test_a_post_not_yet_live_is_cancelled_instead(s: Seeded) -> None:
    pid = s.draft("Assembly", accounts=("stmarys-x",))
    s.approve(pid)
    out = s.ws.ok("takedown", pid, "--reason", "wrong date", "--requested-by", "Head")
    assert "not live yet: cancelled instead" in out
    shown = s.show(pid)
    assert shown["status"] == "cancelled"
    assert "POST_CANCELLED" in s.codes(pid, "stmarys-x")
    assert _kinds(s, "post_cancelled")


def test_bad_takedowns_are_one_clear_line_and_change_nothing(s: Seeded) -> None:
    pid = s.draft("Assembly", accounts=("stmarys-x",))
    s.ws.ok("post", "cancel", pid)
    db = s.ws.dir / "var" / "publisher.db"
    for args, expect in [
        (("takedown", "P-NOPE", "--reason", "r", "--requested-by", "x"), "No post P-NOPE"),
        (("takedown", pid, "--reason", "r", "--requested-by", "x"), "never went live"),
        (("takedown", pid, "--requested-by", "x"), "needs --reason"),
        (("takedown", "--subject", "S-NOPE", "--reason", "r", "--requested-by", "x"), "No subject S-NOPE"),
    ]:
        before = dump_sqlite(db)
        r = s.ws.run(*args)
        assert r.code != 0, r.out
        assert len(r.err.strip().splitlines()) == 1 and expect in r.err, r.err
        assert dump_sqlite(db) == before


def _sandbox(s: Seeded) -> Sandbox:
    return Sandbox(s.ws.dir / "var" / "sandbox").start()


def test_a_platform_refusing_the_delete_is_reported_and_the_post_stays_recorded_live(s: Seeded) -> None:
    pid = _published(s, "Sports day!", ("stmarys-x",))
    svc = service(s.ws, actor="DPO")
    sandbox = _sandbox(s)
    try:
        from publisher.takedown import request_takedown

        sandbox.inject("x", "delete", "duplicate")  # X answers 403: a permanent refusal
        req = request_takedown(svc, pid, "parent asked", "Mrs Jones")
        with Platforms(svc.config, svc.vault(), settings=FAST, sandbox=sandbox) as platforms:
            [attempt] = process_pending_takedowns(svc, platforms, svc.now(), only=req.queued)
        assert attempt.outcome == "failed" and "refused" in attempt.message
        assert len(live_on(s.ws, "stmarys-x")) == 1
        pending = s.ws.ok("takedown", "--pending")
        assert "failed" in pending and pid in pending
        assert not _kinds(s, "taken_down")
    finally:
        sandbox.stop()
        svc.close()
    r = s.ws.run("takedown", "--retry")  # the refusal has passed: the retry succeeds
    assert r.code == 0 and "confirmed gone" in r.out, r.err
    assert live_on(s.ws, "stmarys-x") == []


def test_a_transient_failure_stays_pending_and_the_daemon_call_finishes_it(s: Seeded) -> None:
    pid = _published(s, "Sports day!", ("stmarys-x",))
    svc = service(s.ws, actor="DPO")
    sandbox = _sandbox(s)
    try:
        from publisher.takedown import request_takedown

        sandbox.inject("x", "delete", "503")
        request_takedown(svc, pid, "parent asked", "Mrs Jones")
        now = svc.now()
        with Platforms(svc.config, svc.vault(), settings=FAST, sandbox=sandbox) as platforms:
            [first] = process_pending_takedowns(svc, platforms, now)
            assert first.outcome == "pending" and "will retry in 30 s" in first.message
            assert process_pending_takedowns(svc, platforms, now + timedelta(seconds=10)) == []  # backing off
            [second] = process_pending_takedowns(svc, platforms, now + timedelta(seconds=31))
        assert second.outcome == "gone"
        assert live_on(s.ws, "stmarys-x") == []
    finally:
        sandbox.stop()
        svc.close()
    assert backoff(1) == timedelta(seconds=30) and backoff(30) == timedelta(hours=1)


def test_takedown_by_subject_and_platform(s: Seeded) -> None:
    img = str(photo(s.ws.dir / "a.jpg"))
    both = ("stmarys-instagram", "stmarys-x")
    _published(s, "Art week", both, "--subject", f"{s.amelia}:image", "--media", img)
    _published(s, "No children", ("stmarys-x",))
    out = s.ws.ok(
        "takedown", "--subject", s.amelia, "--platform", "x", "--reason", "parent asked", "--requested-by", "Mr J"
    )
    assert out.count("taken down and confirmed gone") == 1, out
    assert len(live_on(s.ws, "stmarys-x")) == 1  # the post without her stays
    assert len(live_on(s.ws, "stmarys-instagram")) == 1  # --platform x only


def test_pause_and_resume_are_logged_and_stop_the_gate(s: Seeded) -> None:
    pid = s.draft("Assembly", accounts=("stmarys-x",))
    s.approve(pid)
    assert "PAUSED" in s.ws.ok("pause", "--reason", "wrong photo went out", actor="Head")
    assert "PUBLISHING_PAUSED" in s.codes(pid, "stmarys-x")
    assert "already paused" in s.ws.ok("pause", "--reason", "again", actor="Head")
    assert "resumed" in s.ws.ok("resume", actor="Head")
    assert "PUBLISHING_PAUSED" not in s.codes(pid, "stmarys-x")
    assert "not paused" in s.ws.ok("resume")
    assert len(_kinds(s, "publishing_paused")) == 1 and len(_kinds(s, "publishing_resumed")) == 1


def test_withdrawing_name_consent_takes_down_posts_that_name_the_child_undeclared(s: Seeded) -> None:
    pid = _published(s, "Well done Millie!", ("stmarys-x",), "--subject", f"{s.amelia}:image")
    assert len(live_on(s.ws, "stmarys-x")) == 1
    out = s.ws.ok("consent", "withdraw", s.amelia, "--platform", "x", "--scope", "name", actor="DFO")
    assert "Taking down 1 live post(s) on x" in out
    assert f"Post {pid} on stmarys-x: taken down and confirmed gone" in out
    assert live_on(s.ws, "stmarys-x") == []
