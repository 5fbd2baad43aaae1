"""What every platform emulator shares: its slice of the state, posts, uploads, accounts."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from publisher.sandbox.http import Reply, Request
from publisher.sandbox.state import SandboxState

Handler = Callable[[Request], Reply]


def token(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


class Emulator:
    """Base of SandboxX, SandboxGraph and SandboxInstagram."""

    platform = ""
    hosts: frozenset[str] = frozenset()

    def __init__(self, state: SandboxState, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.clock = clock

    # --- to override -------------------------------------------------------------------
    def route(self, req: Request) -> tuple[str, Handler] | None:
        raise NotImplementedError

    def fault_reply(self, kind: str, seconds: float) -> Reply:
        raise NotImplementedError

    def not_found(self, req: Request) -> Reply:
        return Reply.of(404, {"message": f"no route {req.method} {req.path}"})

    def provision(self, name: str) -> dict[str, str]:
        raise NotImplementedError

    # --- shared --------------------------------------------------------------------------
    @property
    def data(self) -> dict[str, Any]:
        return self.state.get(self.platform)

    def save(self) -> None:
        self.state.save(self.platform)

    def add_post(self, post_id: str, account: str, text: str, media: list[str], **extra: Any) -> dict[str, Any]:
        """Record a created post (live) and count the creation; returns the stored dict."""
        with self.state.lock:
            post = {
                "id": post_id,
                "account": account,
                "text": text,
                "media": media,
                "created_at": int(self.clock()),
                "live": True,
                **extra,
            }
            self.data["posts"][post_id] = post
            created = self.data["created"]
            created[account] = int(created.get(account, 0)) + 1
            self.save()
            return post

    def live_post(self, post_id: str) -> dict[str, Any] | None:
        post = self.data["posts"].get(post_id)
        return post if post is not None and post.get("live") else None

    def remove_post(self, post_id: str) -> bool:
        with self.state.lock:
            post = self.live_post(post_id)
            if post is None:
                return False
            post["live"] = False
            post["deleted_at"] = int(self.clock())
            self.save()
            return True

    def live(self, account: str) -> list[dict[str, Any]]:
        with self.state.lock:
            posts = [dict(p) for p in self.data["posts"].values() if p["account"] == account and p["live"]]
        return sorted(posts, key=lambda p: (p["created_at"], p["id"]))

    def created_count(self, account: str) -> int:
        with self.state.lock:
            return int(self.data["created"].get(account, 0))

    def store_upload(self, media_id: str, account: str, data: bytes, **meta: Any) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        folder = self.state.data_dir / "media"
        folder.mkdir(exist_ok=True)
        target = folder / digest
        if not target.exists():
            target.write_bytes(data)
        with self.state.lock:
            record = {"id": media_id, "account": account, "sha256": digest, "size": len(data), **meta}
            self.data["uploads"][media_id] = record
            self.save()
            return record

    def upload(self, media_id: str) -> dict[str, Any] | None:
        record: dict[str, Any] | None = self.data["uploads"].get(media_id)
        return record

    def account(self, account_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.data["accounts"].get(account_id)
        return found

    def add_account(self, account_id: str, record: dict[str, Any]) -> None:
        with self.state.lock:
            self.data["accounts"][account_id] = record
            self.save()

    def revoke(self, account_id: str) -> None:
        """The account's credentials stop working (token revoked, session logged out)."""
        with self.state.lock:
            record = self.data["accounts"][account_id]
            record["revoked"] = True
            self.save()
