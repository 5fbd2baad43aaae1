"""A seeded store for queue and daemon tests, built through the Service API (fast), with the
accounts on the sandbox emulators. Shared by tests/contract/queue and tests/integration."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image

from publisher import config as cfgmod
from publisher.domain.limits import Platform
from publisher.domain.model import Role, Scope, SubjectKind
from publisher.service import Service

ROOT_PW = "root passphrase for tests"
HEAD_PW = "head passphrase for tests"
ACCOUNTS = (("stmarys-x", "x"), ("stmarys-facebook", "facebook"), ("stmarys-instagram", "instagram"))
FAST = {
    "timeout": 3.0,
    "lease_seconds": 30.0,
    "backoff_base": 0.05,
    "backoff_max": 0.5,
    "max_rate_wait": 0.5,
    "instagram_pause": 0.0,
    "instagram_request_delay": 0.0,
    "max_attempts": 30,
    "reconcile_attempts": 30,
    "dispatch_seconds": 0.2,
    "reconcile_seconds": 0.5,
    "settle_seconds": 0.3,
}


def config_text(
    database_url: str,
    daemon: dict[str, Any],
    posts_per_day: int,
    accounts: Sequence[tuple[str, str]],
    origin: str = "test.invalid/log",
) -> str:
    """A config.toml for one school with sandbox accounts (also the benchmarks' workspace)."""
    lines = ["[publisher]", 'data_dir = "var"', 'timezone = "Europe/London"']
    if database_url:
        lines.append(f'database_url = "{database_url}"')
    lines += ["", "[trust]", 'root_key_file = "keys/trust-root.pem"', "", "[log]", f'origin = "{origin}"', ""]
    lines += ["[daemon]", *(f"{k} = {v!r}" for k, v in daemon.items()), ""]
    lines += ["[[schools]]", 'id = "stmarys"', 'name = "St Mary\'s"']
    for name, platform in accounts:
        lines += ["", "[[accounts]]", f'name = "{name}"', 'school = "stmarys"', f'platform = "{platform}"']
        lines += [f'handle = "{name}"', "sandbox = true", f"posts_per_day = {posts_per_day}"]
    return "\n".join(lines) + "\n"


def jpeg(colour: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    img = Image.new("RGB", (640, 640), colour)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 14"
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


@dataclass
class World:
    dir: Path
    svc: Service
    key: Path
    key_id: str
    amelia: str  # consent everywhere
    oliver: str  # Facebook image only
    photo: Path
    accounts: tuple[tuple[str, str], ...]
    _n: list[int] = field(default_factory=lambda: [0])

    @property
    def config_path(self) -> Path:
        return self.dir / "config.toml"

    def as_(self, actor: str) -> Service:
        return Service(self.svc.config, self.svc.engine, actor, self.svc.now)

    def draft(self, text: str | None = None, accounts: Sequence[str] | None = None, at: str | None = None,
              featured: Sequence[str] | None = None) -> str:  # fmt: skip
        self._n[0] += 1
        text = text or f"Sports day, post {self._n[0]}"
        soon = self.svc.now() + timedelta(seconds=1)  # whole seconds; after the consents were given
        when = at or soon.astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m-%d %H:%M:%S")
        feat = [f"{self.amelia}:image"] if featured is None else list(featured)
        names = list(accounts) if accounts is not None else [a for a, _ in self.accounts]
        return self.as_("Sam Teacher").post_draft(text, names, when, [self.photo], feat)

    def approve(self, post_id: str, window_hours: int = 12) -> None:
        self.as_("Jane Head").approve(post_id, self.key, HEAD_PW, window_hours)

    def post(self, *args: Any, **kwargs: Any) -> str:
        pid = self.draft(*args, **kwargs)
        self.approve(pid)
        return pid


def build_world(
    base: Path,
    database_url: str = "",
    daemon: dict[str, Any] | None = None,
    posts_per_day: int = 100_000,
    now: Callable[[], datetime] | None = None,
    accounts: Sequence[tuple[str, str]] = ACCOUNTS,
) -> World:
    base.mkdir(parents=True, exist_ok=True)
    path = base / "config.toml"
    path.write_text(config_text(database_url, {**FAST, **(daemon or {})}, posts_per_day, accounts), encoding="utf-8")
    clock = now or (lambda: datetime.now(UTC))
    cfg = cfgmod.load(path)
    for sub in ("media", "keys"):
        (cfg.data_dir / sub).mkdir(parents=True, exist_ok=True)
    first = Service.open(cfg, "DFO", now=clock, migrate=True)
    first.setup()
    first.trust_init(ROOT_PW)
    first.close()
    svc = Service.open(cfgmod.load(path), "DFO", now=clock)
    kid, key = svc.approver_add("Jane Head", Role.HEADTEACHER, ["stmarys"], ROOT_PW, HEAD_PW)
    svc.device_add("Apple", "iPhone 14")
    amelia = svc.subject_add("Amelia Jones", SubjectKind.PUPIL)
    oliver = svc.subject_add("Oliver Smith", SubjectKind.PUPIL)
    for platform in Platform:
        svc.consent_grant(amelia, platform, Scope.IMAGE, "SMA-1")
    svc.consent_grant(oliver, Platform.FACEBOOK, Scope.IMAGE, "SMA-2")
    photo = base / "photo.jpg"
    photo.write_bytes(jpeg())
    return World(base, svc, key, kid, amelia, oliver, photo, tuple(accounts))


class FakeClock:
    """An injectable clock for Service(now=...)."""

    def __init__(self, start: datetime) -> None:
        self.t = start

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw: float) -> None:
        self.t += timedelta(**kw)


def deliveries(svc: Service) -> list[Any]:
    from sqlalchemy import select

    from publisher.store import db
    from publisher.store import models as m

    with db.transaction(svc.engine) as s:
        return list(s.scalars(select(m.DeliveryRow).order_by(m.DeliveryRow.id)))


def log_bodies(svc: Service, kind: str) -> list[dict[str, Any]]:
    with svc.engine.connect() as conn:
        return [e.body for e in svc.audit.ledger.entries(conn, kind=kind)]


def check_exactly_once(
    svc: Service, sandbox: Any, account_ids: dict[str, str], allow_unconfirmed: bool = False
) -> dict[str, int]:
    """Every delivery live exactly once on its platform, inside its window, one log entry each.
    Returns counts by status."""
    from publisher.ledger import log as kinds
    from publisher.store import db, repo

    rows = deliveries(svc)
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    allowed = {"live", "unconfirmed"} if allow_unconfirmed else {"live"}
    assert set(by_status) <= allowed, by_status
    published = log_bodies(svc, kinds.POST_PUBLISHED)
    assert sorted(b["delivery"] for b in published) == sorted(r.id for r in rows if r.status == "live")
    with db.transaction(svc.engine) as s:
        windows = {r.post_id: repo.latest_approval(s, r.post_id) for r in rows}
        texts = {r.post_id: repo.get_post(s, r.post_id).text for r in rows}
    for name, platform in {(r.account, svc.config.account(r.account).platform.value) for r in rows}:  # type: ignore[union-attr]
        mine = [r for r in rows if r.account == name]
        live = sandbox.live(platform, account_ids[name])
        seen = [p["text"] for p in live]
        assert len(seen) == len(set(seen)), f"duplicate post on {name}"
        assert sandbox.created_count(platform, account_ids[name]) == len(live), f"a post was created twice on {name}"
        ids = {str(p["id"]) for p in live}
        for r in mine:
            if r.status == "live":
                assert r.platform_id in ids, f"{r.id} recorded live but not on {name}"
                approval = windows[r.post_id]
                assert approval is not None and approval.not_before <= r.published_at <= approval.not_after
        live_texts = {texts[r.post_id] for r in mine if r.status == "live"}
        unconfirmed = {texts[r.post_id] for r in mine if r.status == "unconfirmed"}
        assert live_texts <= set(seen) <= live_texts | unconfirmed, f"{name}: emulator and store disagree"
    return by_status


def provision(w: World, sandbox: Any) -> dict[str, str]:
    """Sandbox credentials for every account into the vault; returns account -> emulator id."""
    from publisher.connectors import ConnectorSettings
    from publisher.platforms import Platforms

    cs = ConnectorSettings(timeout=3.0, instagram_pause=0.0, instagram_request_delay=0.0)
    with Platforms(w.svc.config, w.svc.vault(), cs, sandbox=sandbox) as platforms:
        return {name: platforms.sandbox_account_id(name) for name, _ in w.accounts}


def active(svc: Service) -> int:
    return sum(1 for r in deliveries(svc) if r.status in ("queued", "inflight", "reconcile"))


def leased(svc: Service) -> list[str]:
    return [r.id for r in deliveries(svc) if r.lease_owner or r.status == "inflight"]
