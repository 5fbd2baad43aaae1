"""SandboxInstagram: the private mobile API endpoints instagrapi uses to post and delete photos.

Accepts only a logged-in session it issued (Authorization: Bearer IGT:2:<base64 JSON> with its
sessionid, or the sessionid cookie). Only JPEG uploads, aspect 4:5 to 1.91:1, 2-10 album items.
"""

from __future__ import annotations

import base64
import io
import json
import re
import string
from typing import Any

from PIL import Image

from publisher.domain.limits import LIMITS, Platform
from publisher.sandbox.emulator import Emulator, Handler, token
from publisher.sandbox.http import Reply, Request

_MAX = LIMITS[Platform.INSTAGRAM]
_ALPHABET = string.ascii_letters + string.digits + "_-"
WRONG_FORMAT = "Uploaded image isn't in the right format"
NOT_FOUND = "Media not found or unavailable"


def fail(status: int, message: str, **extra: Any) -> Reply:
    return Reply.of(status, {"message": message, "status": "fail", **extra})


def shortcode(pk: int) -> str:
    out = ""
    while pk:
        pk, rest = divmod(pk, 64)
        out = _ALPHABET[rest] + out
    return out or "A"


class SandboxInstagram(Emulator):
    platform = "instagram"
    hosts = frozenset({"i.instagram.com", "b.i.instagram.com", "www.instagram.com"})

    def route(self, req: Request) -> tuple[str, Handler] | None:
        table: list[tuple[str, str, str, Any]] = [
            ("GET", r"/api/v1/accounts/current_user/", "current_user", self._current_user),
            ("GET", r"/api/v1/feed/user/(\d+)/", "feed", self._feed),
            ("POST", r"/rupload_igphoto/([\w-]+)", "rupload", self._rupload),
            ("POST", r"/api/v1/media/configure/", "configure", self._configure),
            ("POST", r"/api/v1/media/configure_sidecar/", "configure_sidecar", self._configure_sidecar),
            ("POST", r"/api/v1/media/(\d+)(?:_\d+)?/delete/", "delete", self._delete),
            ("GET", r"/api/v1/media/(\d+)(?:_\d+)?/info/", "info", self._info),
        ]
        for method, pattern, name, handler in table:
            match = re.fullmatch(pattern, req.path)
            if req.method == method and match:
                groups = match.groups()
                return name, self._logged_in(handler, groups[0] if groups else "")
        return None

    def not_found(self, req: Request) -> Reply:
        return fail(404, f"not emulated: {req.method} {req.path}")

    def fault_reply(self, kind: str, seconds: float) -> Reply:
        if kind == "429":
            headers = {"Retry-After": str(int(seconds))} if seconds else {}
            return Reply.of(
                429, {"message": "Please wait a few minutes before you try again.", "status": "fail"}, headers
            )
        if kind == "challenge":
            return fail(
                400,
                "challenge_required",
                challenge={
                    "url": "https://i.instagram.com/challenge/",
                    "api_path": "/challenge/",
                    "hide_webview_header": True,
                    "lock": True,
                    "logout": False,
                    "native_flow": True,
                },
            )
        if kind == "duplicate":
            return fail(400, "feedback_required", feedback_message="This action was blocked.")
        status = 503 if kind == "503" else 500
        return fail(status, "Oops, an error occurred.")

    def provision(self, name: str) -> dict[str, str]:
        user_id = self.state.next_id(self.platform, 5_550_000_000)
        username = re.sub(r"[^a-z0-9_.]", "_", name.lower())[:30] or "school"
        password, session_id = token(18), f"{user_id}%3A{token(20)}%3A7"
        self.add_account(user_id, {"username": username, "password": password, "sessionid": session_id})
        settings = {
            "authorization_data": {
                "ds_user_id": user_id,
                "sessionid": session_id,
                "should_use_header_over_cookies": True,
            },
            "cookies": {},
            "last_login": self.clock(),
            "uuids": {},
        }
        return {"username": username, "password": password, "session": json.dumps(settings), "account_id": user_id}

    # --- auth ------------------------------------------------------------------------------
    def _logged_in(self, handler: Any, arg: str) -> Handler:
        def run(req: Request) -> Reply:
            user = self._session_user(req)
            if user is None:
                return fail(403, "login_required", error_title="You've Been Logged Out", logout_reason=2)
            reply: Reply = handler(req, user, arg)
            return reply

        return run

    def _session_user(self, req: Request) -> str | None:
        user_id, session_id = None, None
        auth = req.headers.get("authorization", "")
        if auth.startswith("Bearer IGT:2:"):
            try:
                data = json.loads(base64.b64decode(auth[len("Bearer IGT:2:") :]))
                user_id, session_id = str(data.get("ds_user_id")), data.get("sessionid")
            except ValueError:
                return None
        else:
            cookies = dict(c.strip().split("=", 1) for c in req.headers.get("cookie", "").split(";") if "=" in c)
            user_id, session_id = cookies.get("ds_user_id"), cookies.get("sessionid")
        account = self.account(str(user_id)) if user_id else None
        if account is None or account.get("revoked") or account["sessionid"] != session_id:
            return None
        return str(user_id)

    # --- endpoints -------------------------------------------------------------------------
    def _current_user(self, req: Request, user: str, _arg: str) -> Reply:
        account = self.data["accounts"][user]
        return Reply.of(
            200,
            {
                "status": "ok",
                "user": {
                    "pk": user,
                    "username": account["username"],
                    "full_name": account["username"],
                    "is_private": False,
                    "profile_pic_url": "https://instagram.example/p.jpg",
                    "is_verified": False,
                    "is_business": False,
                },
            },
        )

    def _rupload(self, req: Request, user: str, name: str) -> Reply:
        try:
            params = json.loads(req.headers.get("x-instagram-rupload-params", ""))
            upload_id = str(params["upload_id"])
        except (ValueError, KeyError):
            return fail(400, "missing X-Instagram-Rupload-Params")
        data = req.body
        if not data.startswith(b"\xff\xd8\xff") or len(data) > _MAX.max_image_bytes:
            return Reply.of(
                400, {"debug_info": {"retriable": False, "type": "ProcessingFailedError", "message": WRONG_FORMAT}}
            )
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except OSError:
            return Reply.of(
                400, {"debug_info": {"retriable": False, "type": "ProcessingFailedError", "message": WRONG_FORMAT}}
            )
        self.store_upload(_upload_key(user, upload_id), user, data, width=width, height=height)
        return Reply.of(200, {"upload_id": upload_id, "xsharing_nonces": {}, "status": "ok"})

    def _child_error(self, user: str, upload_id: str) -> Reply | None:
        upload = self.upload(_upload_key(user, upload_id))
        if upload is None or upload["account"] != user or upload.get("used"):
            return fail(400, "media_needs_reupload", error_title="Upload not found")
        aspect = upload["width"] / upload["height"]
        if not (_MAX.min_aspect or 0) - 1e-3 <= aspect <= (_MAX.max_aspect or 9) + 1e-3:
            return fail(400, WRONG_FORMAT)
        return None

    def _caption_error(self, caption: str) -> Reply | None:
        if len(caption) > _MAX.max_text:
            return fail(400, "The caption is too long.")
        return None

    def _configure(self, req: Request, user: str, _arg: str) -> Reply:
        body = _signed_body(req)
        upload_id, caption = str(body.get("upload_id", "")), str(body.get("caption", ""))
        error = self._caption_error(caption) or self._child_error(user, upload_id)
        if error is not None:
            return error
        media = self._create(user, caption, [upload_id])
        return Reply.of(200, {"status": "ok", "upload_id": upload_id, "media": media})

    def _configure_sidecar(self, req: Request, user: str, _arg: str) -> Reply:
        body = _signed_body(req)
        children = body.get("children_metadata") or []
        caption = str(body.get("caption", ""))
        ids = [str(c.get("upload_id", "")) for c in children if isinstance(c, dict)]
        if not 2 <= len(ids) <= _MAX.max_images:
            return fail(400, f"An album needs 2 to {_MAX.max_images} items; got {len(ids)}")
        error = self._caption_error(caption) or next(
            (e for e in (self._child_error(user, i) for i in ids) if e is not None), None
        )
        if error is not None:
            return error
        media = self._create(user, caption, ids)
        return Reply.of(200, {"status": "ok", "client_sidecar_id": body.get("client_sidecar_id"), "media": media})

    def _create(self, user: str, caption: str, upload_ids: list[str]) -> dict[str, Any]:
        with self.state.lock:
            keys = [_upload_key(user, i) for i in upload_ids]
            uploads = [self.data["uploads"][k] for k in keys]
            for upload in uploads:
                upload["used"] = True
            pk = self.state.next_id(self.platform, 3_100_000_000_000_000_000)
            post = self.add_post(
                f"{pk}_{user}",
                user,
                caption,
                [u["sha256"] for u in uploads],
                pk=pk,
                code=shortcode(int(pk)),
                upload_ids=keys,
            )
        return self._media_json(post)

    def _media_json(self, post: dict[str, Any]) -> dict[str, Any]:
        account = self.data["accounts"][post["account"]]
        uploads = [self.data["uploads"][i] for i in post["upload_ids"]]
        media: dict[str, Any] = {
            "pk": post["pk"],
            "id": post["id"],
            "code": post["code"],
            "taken_at": post["created_at"],
            "media_type": 1,
            "product_type": "feed",
            "user": {"pk": post["account"], "username": account["username"]},
            "caption": {"text": post["text"]} if post["text"] else None,
        }
        items = [
            {
                "pk": f"{post['pk']}{n}",
                "id": f"{post['pk']}{n}_{post['account']}",
                "media_type": 1,
                "image_versions2": {
                    "candidates": [
                        {
                            "url": f"https://scontent.cdninstagram.com/{u['sha256']}.jpg",
                            "width": u["width"],
                            "height": u["height"],
                        }
                    ]
                },
            }
            for n, u in enumerate(uploads)
        ]
        if len(items) == 1:
            media["image_versions2"] = items[0]["image_versions2"]
        else:
            media.update(media_type=8, carousel_media=items, carousel_media_count=len(items))
        return media

    def _delete(self, req: Request, user: str, pk: str) -> Reply:
        post_id = f"{pk}_{user}"
        post = self.live_post(post_id)
        if post is None:
            return fail(400, NOT_FOUND)
        self.remove_post(post_id)
        return Reply.of(200, {"did_delete": True, "status": "ok"})

    def _info(self, req: Request, user: str, pk: str) -> Reply:
        post = next((p for p in self.data["posts"].values() if p.get("pk") == pk and p["live"]), None)
        if post is None:
            return fail(400, NOT_FOUND)
        return Reply.of(
            200, {"items": [self._media_json(post)], "num_results": 1, "more_available": False, "status": "ok"}
        )

    def _feed(self, req: Request, user: str, owner: str) -> Reply:
        count = int(req.query.get("count") or 12) or 12
        posts = list(reversed(self.live(owner)))[:count]
        return Reply.of(
            200,
            {
                "items": [self._media_json(p) for p in posts],
                "num_results": len(posts),
                "more_available": False,
                "status": "ok",
            },
        )


def _signed_body(req: Request) -> dict[str, Any]:
    raw = req.form().get("signed_body", "")
    _, _, payload = raw.partition(".")
    try:
        data = json.loads(payload)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _upload_key(user: str, upload_id: str) -> str:
    """Upload ids are the client's millisecond timestamps: Instagram keeps them per account, so
    two accounts uploading in the same millisecond (two daemons, say) do not collide."""
    return f"{user}/{upload_id}"
