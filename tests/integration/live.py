"""A stand-in for the daemon (being built in parallel): put a post live through the real
connectors and the sandbox emulators, and record it as the daemon does (delivery live plus a
POST_PUBLISHED entry; or blocked plus PUBLISH_BLOCKED). The lead switches these tests to the
real daemon when it lands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from publisher import config as cfgmod
from publisher.connectors import ConnectorSettings, MediaItem, PublishedRef, RenderedPost
from publisher.domain import gate
from publisher.ledger import log as kinds
from publisher.platforms import Platforms
from publisher.service import Service
from publisher.store import db, repo
from publisher.store import models as m
from tests.conftest import Workspace

FAST = ConnectorSettings(timeout=5.0, instagram_pause=0.0, instagram_request_delay=0.0)
FAST_DAEMON = "\n[daemon]\ntimeout = 5.0\ninstagram_pause = 0.0\ninstagram_request_delay = 0.0\nsettle_seconds = 0.3\n"


def fast(ws: Workspace) -> None:
    """No Instagram pauses for the CLI's own connectors (takedown, consent withdraw)."""
    with open(ws.config, "a", encoding="utf-8") as handle:
        handle.write(FAST_DAEMON)


def service(ws: Workspace, actor: str = "daemon") -> Service:
    return Service.open(cfgmod.load(ws.config), actor)


def _rendered(svc: Service, s: Any, post_id: str, marker: str) -> RenderedPost:
    post = repo.get_post(s, post_id)
    items = []
    for media in repo.post_media(s, post_id):
        data = repo.media_file(svc.config.media_dir, media).read_bytes()
        items.append(MediaItem(data, media.mime, media.sha256, media.width, media.height))
    return RenderedPost(post.text, tuple(items), marker)


def go_live(ws: Workspace, post_id: str, accounts: tuple[str, ...] | None = None) -> dict[str, PublishedRef]:
    """Publish the post's queued deliveries (or those for ``accounts``) and record them live."""
    svc = service(ws)
    out: dict[str, PublishedRef] = {}
    try:
        with Platforms(svc.config, svc.vault(), settings=FAST) as platforms:
            with db.transaction(svc.engine) as s:
                q = select(m.DeliveryRow).where(m.DeliveryRow.post_id == post_id, m.DeliveryRow.status == "queued")
                todo = [(d.id, d.account) for d in s.scalars(q) if accounts is None or d.account in accounts]
                rendered = {d: _rendered(svc, s, post_id, d) for d, _ in todo}
            for delivery_id, account in todo:
                ref = platforms.connector(account).publish(rendered[delivery_id])
                _record_live(svc, delivery_id, ref)
                out[account] = ref
    finally:
        svc.close()
    return out


def _record_live(svc: Service, delivery_id: str, ref: PublishedRef) -> None:
    with db.transaction(svc.engine) as s:
        d = s.get(m.DeliveryRow, delivery_id)
        assert d is not None
        d.status, d.platform_id, d.url, d.published_at = "live", ref.platform_id, ref.url, svc.now()
        post = repo.get_post(s, d.post_id)
        post.status = "published"
        body = {
            "post": d.post_id, "delivery": d.id, "account": d.account, "platform": ref.platform,
            "platform_id": ref.platform_id, "url": ref.url, "jti": d.jti,
            "media_sha256": [md.sha256 for md in repo.post_media(s, d.post_id)],
        }  # fmt: skip
        svc.record(s, kinds.POST_PUBLISHED, body, svc.personal(s, repo.domain_post(s, post, ())))


def block(ws: Workspace, post_id: str, account: str) -> list[str]:
    """Run the gate as the daemon would at post time; record the delivery blocked. Returns codes."""
    svc = service(ws)
    try:
        with db.transaction(svc.engine) as s:
            gi = next(g for g in svc.gate_inputs(s, post_id, gate.Stage.PUBLISH) if g.account_name == account)
            findings = [f for f in gate.evaluate(gi) if f.blocking]
            d = s.scalars(
                select(m.DeliveryRow).where(m.DeliveryRow.post_id == post_id, m.DeliveryRow.account == account)
            ).one()
            d.status, d.findings = "blocked", [{"code": f.code, "message": f.message} for f in findings]
            personal: dict[str, dict[str, object]] = {}
            for f in findings:
                if f.subject_id:
                    personal.setdefault(f.subject_id, {"findings": []})["findings"].append(  # type: ignore[attr-defined]
                        {"code": f.code, "message": f.message}
                    )
            codes = sorted({f.code for f in findings})
            body = {"post": post_id, "delivery": d.id, "account": account, "codes": codes, "jti": d.jti}
            svc.record(s, kinds.PUBLISH_BLOCKED, body, personal)
            return codes
    finally:
        svc.close()


def live_on(ws: Workspace, account: str) -> list[str]:
    """The platform ids the emulator shows live for a configured sandbox account."""
    cfg = cfgmod.load(ws.config)
    svc = service(ws)
    try:
        platforms = Platforms(cfg, svc.vault(), settings=FAST)
        account_id = platforms.sandbox_account_id(account)
    finally:
        svc.close()
    platform = cfg.account(account).platform.value  # type: ignore[union-attr]
    path = Path(cfg.data_dir) / "sandbox" / f"{platform}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    return sorted(p["id"] for p in data["posts"].values() if p["account"] == account_id and p["live"])
