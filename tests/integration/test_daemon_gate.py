"""At post time the daemon re-runs the whole gate: what changed after approval blocks the post,
with the finding logged (codes and pseudonyms only). Clock changes. The daily budget."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from publisher.connectors import ConnectorSettings
from publisher.daemon import Daemon
from publisher.domain.limits import Platform
from publisher.domain.model import Scope, SubjectKind
from publisher.errors import InvalidInput
from publisher.platforms import Platforms
from publisher.queue.settings import QueueSettings
from publisher.sandbox import Sandbox
from publisher.store import db
from publisher.store import models as m
from tests.contract.queue.world import ROOT_PW, FakeClock, World, build_world, deliveries, log_bodies

FAST = ConnectorSettings(timeout=3.0, instagram_pause=0.0, instagram_request_delay=0.0)


class Env:
    def __init__(self, w: World, sb: Sandbox, platforms: Platforms) -> None:
        self.w, self.sb, self.platforms = w, sb, platforms

    def run(self, wait: bool = True) -> int:
        """The daemon until what is due within 2 s is settled (`wait` False: only what is due now,
        for tests on a fake clock)."""
        until = self.w.svc.now() + timedelta(seconds=2) if wait else None
        with Daemon(self.w.svc, QueueSettings.load(self.w.config_path), self.platforms) as d:
            return d.drain(until=until, timeout=30)

    def live(self, account: str) -> list[str]:
        platform = self.w.svc.config.account(account).platform.value  # type: ignore[union-attr]
        return [p["text"] for p in self.sb.live(platform, self.platforms.sandbox_account_id(account))]


def make_env(tmp_path: Path, **kw: object) -> Iterator[Env]:
    w = build_world(tmp_path / "w", **kw)  # type: ignore[arg-type]
    with (
        Sandbox(w.svc.config.data_dir / "sandbox") as sb,
        Platforms(w.svc.config, w.svc.vault(), FAST, sandbox=sb) as p,
    ):
        yield Env(w, sb, p)
    w.svc.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from make_env(tmp_path)


def blocked_codes(w: World) -> dict[str, set[str]]:
    return {r.account: {f["code"] for f in r.findings} for r in deliveries(w.svc) if r.status == "blocked"}


def test_consent_withdrawn_after_approval_blocks_at_post_time_and_is_logged(env: Env) -> None:
    w = env.w
    pid = w.post(accounts=["stmarys-x", "stmarys-instagram"])
    w.svc.consent_withdraw(w.amelia, Platform.INSTAGRAM, Scope.IMAGE, "parent's e-mail")
    assert env.run() == 0
    assert blocked_codes(w) == {"stmarys-instagram": {"CONSENT_WITHDRAWN"}}
    assert env.live("stmarys-instagram") == []
    assert len(env.live("stmarys-x")) == 1
    (entry,) = log_bodies(w.svc, "publish_blocked")
    assert entry["post"] == pid and entry["codes"] == ["CONSENT_WITHDRAWN"]
    assert [s["ref"].startswith("subj:") for s in entry["subjects"]] == [True]
    assert "Amelia" not in repr(entry) and w.amelia not in repr(entry)  # names and ids only sealed


def test_a_child_registered_after_approval_and_named_in_the_text_blocks_at_post_time(env: Env) -> None:
    """The gate's view of the register is cached per register version: adding a subject must
    move the version, or the daemon would screen the text against the register it saw before."""
    w = env.w
    pid = w.post(text="Well done Zara Quinn at sports day", accounts=["stmarys-x"])
    assert w.svc.screen(pid).findings["stmarys-x"] == []  # the daemon's service has seen the register
    w.svc.subject_add("Zara Quinn", SubjectKind.PUPIL)
    env.run()
    assert blocked_codes(w) == {"stmarys-x": {"NAME_WITHOUT_CONSENT"}}
    assert env.live("stmarys-x") == []


def test_a_post_with_the_same_photo_twice_publishes_both(env: Env) -> None:
    """The publisher uploads the bytes its gate read, position by position (not by hash)."""
    from zoneinfo import ZoneInfo

    w = env.w
    soon = (w.svc.now() + timedelta(seconds=1)).astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m-%d %H:%M:%S")
    pid = w.as_("Sam Teacher").post_draft(
        "Twice the fun", ["stmarys-x"], soon, [w.photo, w.photo], [f"{w.amelia}:image"]
    )
    w.approve(pid)
    env.run()
    assert [r.status for r in deliveries(w.svc)] == ["live"]
    [live] = env.sb.live("x", env.platforms.sandbox_account_id("stmarys-x"))
    assert len(live["media"]) == 2


@pytest.mark.parametrize("change", ["replaced", "removed"])
def test_an_image_changed_on_disk_after_approval_is_never_uploaded(env: Env, change: str) -> None:
    """The publisher uploads the bytes its gate read; bytes that differ from the approved hash
    (or are gone) block the delivery, and the platform receives nothing."""
    from publisher.store import repo

    w = env.w
    pid = w.post(accounts=["stmarys-x"])
    with db.reading(w.svc.engine) as s:
        [media] = repo.post_media(s, pid)
        path = repo.media_file(w.svc.config.media_dir, media)
    if change == "replaced":
        path.write_bytes(path.read_bytes() + b"\x00")
    else:
        path.unlink()
    env.run()
    assert "APPROVAL_CONTENT_MISMATCH" in blocked_codes(w)["stmarys-x"]  # (a missing file is unreadable too)
    assert env.sb.created_count("x", env.platforms.sandbox_account_id("stmarys-x")) == 0


@pytest.mark.parametrize(
    ("edit", "codes"),
    [
        ("text", {"APPROVAL_CONTENT_MISMATCH"}),
        ("token", {"APPROVAL_SIGNATURE_INVALID"}),
        ("featured", {"APPROVAL_CONTENT_MISMATCH", "CONSENT_MISSING"}),  # (named, without name consent)
    ],
)
def test_a_row_edited_behind_the_approval_blocks_at_post_time(env: Env, edit: str, codes: set[str]) -> None:
    """At the moment of posting the daemon's gate reads the post, its approval token and whom
    it features from the store again: a row edited after approval (the text, one character of
    the token, a featured child's scopes) blocks the delivery, and the platform receives nothing."""
    from sqlalchemy import select

    w = env.w
    pid = w.post(accounts=["stmarys-x"])
    with db.transaction(w.svc.engine) as s:
        if edit == "text":
            s.execute(update(m.PostRow).where(m.PostRow.id == pid).values(text=m.PostRow.text + "!"))
        elif edit == "token":
            token = s.scalar(select(m.ApprovalRow.token).where(m.ApprovalRow.post_id == pid)) or ""
            i = len(token) // 2
            forged = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
            s.execute(update(m.ApprovalRow).where(m.ApprovalRow.post_id == pid).values(token=forged))
        else:
            s.execute(update(m.PostSubjectRow).where(m.PostSubjectRow.post_id == pid).values(name=True))
    env.run()
    assert blocked_codes(w) == {"stmarys-x": codes}
    assert env.sb.created_count("x", env.platforms.sandbox_account_id("stmarys-x")) == 0


def test_a_revoked_approver_blocks_every_delivery_at_post_time(env: Env) -> None:
    w = env.w
    w.post()
    w.svc.approver_revoke(w.key_id, "left the school", ROOT_PW)
    env.run()
    assert set(blocked_codes(w)) == {a for a, _ in w.accounts}
    assert all(codes == {"APPROVER_REVOKED"} for codes in blocked_codes(w).values())
    assert all(env.live(a) == [] for a, _ in w.accounts)
    assert len(log_bodies(w.svc, "publish_blocked")) == 3


def test_a_cancelled_post_is_never_published_even_if_already_claimed(env: Env) -> None:
    w = env.w
    pid = w.post(accounts=["stmarys-x"])
    w.svc.post_cancel(pid, "wrong photo")
    assert [r.status for r in deliveries(w.svc)] == ["cancelled"]
    with db.transaction(w.svc.engine) as s:  # as if the daemon had claimed it just before the cancel
        for r in s.query(m.DeliveryRow):
            r.status = "queued"
    env.run()
    assert blocked_codes(w) == {"stmarys-x": {"POST_CANCELLED"}}
    assert env.live("stmarys-x") == []


def test_an_approval_window_that_closed_while_retrying_blocks(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2027, 5, 10, 8, 0, tzinfo=UTC))
    for env in make_env(tmp_path, now=clock):
        w = env.w
        w.draft(accounts=["stmarys-x"])
        w.approve(next(p.id for p in w.svc.posts()), window_hours=1)
        env.sb.inject("x", "create", "503", times=1)
        clock.advance(seconds=2)
        env.run(wait=False)
        assert deliveries(w.svc)[0].status == "queued"  # 503: certainly not published; retry later
        clock.advance(hours=2)
        env.run(wait=False)
        assert blocked_codes(w) == {"stmarys-x": {"APPROVAL_EXPIRED", "OUTSIDE_APPROVED_WINDOW"}}
        assert env.live("stmarys-x") == []


def test_clock_change_post_at_0900_on_28_march_2027_goes_out_at_0800_utc(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2027, 3, 27, 12, 0, tzinfo=UTC))
    for env in make_env(tmp_path, now=clock):
        w = env.w
        with pytest.raises(InvalidInput, match="does not exist"):
            w.draft(at="2027-03-28 01:30")
        with pytest.raises(InvalidInput, match="happens twice"):
            w.draft(at="2027-10-31 01:30")
        w.draft(at="2027-10-31 01:30+01:00", accounts=["stmarys-x"])  # the offset settles it
        pid = w.draft(at="2027-03-28 09:00", accounts=["stmarys-x"])
        w.approve(pid)
        clock.t = datetime(2027, 3, 28, 7, 59, 59, tzinfo=UTC)
        env.run(wait=False)
        assert env.live("stmarys-x") == []
        clock.t = datetime(2027, 3, 28, 8, 0, tzinfo=UTC)
        env.run(wait=False)
        row = next(r for r in deliveries(w.svc) if r.post_id == pid)
        assert row.status == "live" and row.published_at == datetime(2027, 3, 28, 8, 0, tzinfo=UTC)
        assert row.due_at == datetime(2027, 3, 28, 8, 0, tzinfo=UTC)


def test_deliveries_wait_for_the_daily_budget_and_never_fail(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2027, 5, 10, 8, 0, tzinfo=UTC))
    for env in make_env(tmp_path, now=clock, posts_per_day=2):
        w = env.w
        for _ in range(3):  # approved for two days: waiting a day for the budget stays in the window
            w.approve(w.draft(accounts=["stmarys-x"]), window_hours=48)
        clock.advance(seconds=2)
        env.run(wait=False)
        rows = deliveries(w.svc)
        assert sorted(r.status for r in rows) == ["live", "live", "queued"]
        waiting = next(r for r in rows if r.status == "queued")
        first = min(r.published_at for r in rows if r.published_at)
        assert waiting.next_try_at is not None and waiting.next_try_at >= first + timedelta(days=1)
        # a post taken down still counts against the day's budget: asked again now, it still waits
        with db.transaction(w.svc.engine) as s:
            gone = next(r.id for r in rows if r.status == "live")
            s.execute(update(m.DeliveryRow).where(m.DeliveryRow.id == gone).values(status="taken_down"))
            s.execute(update(m.DeliveryRow).where(m.DeliveryRow.id == waiting.id).values(next_try_at=None))
        env.run(wait=False)
        again = next(r for r in deliveries(w.svc) if r.id == waiting.id)
        assert again.status == "queued" and again.next_try_at == waiting.next_try_at
        clock.t = waiting.next_try_at
        env.run(wait=False)
        assert sorted(r.status for r in deliveries(w.svc)) == ["live", "live", "taken_down"]
        assert len(env.live("stmarys-x")) == 3
