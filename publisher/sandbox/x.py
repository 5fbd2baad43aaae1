"""SandboxX: the X API v2 endpoints the XConnector uses, with X's own bodies and headers.

Accepts only requests carrying a valid OAuth 1.0a HMAC-SHA1 signature made over the real
https URL (rebuilt from X-Original-Host) by a consumer and token it issued.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
from typing import Any

from oauthlib.oauth1.rfc5849 import signature, utils  # no stubs installed
from twitter_text import parse_tweet

from publisher.domain.limits import LIMITS, Platform
from publisher.sandbox.emulator import Emulator, Handler, token
from publisher.sandbox.http import Reply, Request

_PROBLEM = "application/problem+json"
_MAX = LIMITS[Platform.X]
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
TOO_LONG = (
    "Your Tweet text is too long. For more information on how X determines text length, "
    "see https://github.com/twitter/twitter-text."
)


def problem(status: int, title: str, detail: str, **extra: Any) -> Reply:
    body = {"title": title, "detail": detail, "type": "about:blank", "status": status, **extra}
    return Reply.of(status, body, None, _PROBLEM)


def invalid_request(parameter: str, value: Any, message: str) -> Reply:
    body = {
        "errors": [{"parameters": {parameter: [value]}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }
    return Reply.of(400, body, None, _PROBLEM)


class SandboxX(Emulator):
    platform = "x"
    hosts = frozenset({"api.twitter.com", "api.x.com", "upload.twitter.com", "upload.x.com"})

    def route(self, req: Request) -> tuple[str, Handler] | None:
        path, method = req.path.rstrip("/"), req.method
        table: list[tuple[str, str, str, Any]] = [
            ("POST", r"/2/tweets", "create", self._create),
            ("DELETE", r"/2/tweets/(\d+)", "delete", self._delete),
            ("GET", r"/2/tweets/(\d+)", "get", self._get),
            ("POST", r"/2/media/upload", "upload", self._upload),
            ("GET", r"/2/users/me", "me", self._me),
            ("GET", r"/2/users/(\d+)/tweets", "user_tweets", self._user_tweets),
        ]
        for want, pattern, name, handler in table:
            if method == want and re.fullmatch(pattern, path):
                return name, self._authorised(handler)
        return None

    def not_found(self, req: Request) -> Reply:
        return problem(404, "Not Found Error", f"no route {req.method} {req.path}")

    def fault_reply(self, kind: str, seconds: float) -> Reply:
        if kind == "429":
            reset = str(int(self.clock() + (seconds or 60)))
            headers = {"x-rate-limit-limit": "200", "x-rate-limit-remaining": "0", "x-rate-limit-reset": reset}
            return Reply.of(
                429,
                {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429},
                headers,
                _PROBLEM,
            )
        if kind == "duplicate":
            return problem(403, "Forbidden", DUPLICATE)
        if kind == "503":
            return problem(503, "Service Unavailable", "Service Unavailable")
        return problem(500, "Internal Server Error", "Internal Server Error")

    def provision(self, name: str) -> dict[str, str]:
        user_id = self.state.next_id(self.platform, 1_880_000_000_000_000_000)
        creds = {
            "consumer_key": token(18),
            "consumer_secret": token(36),
            "access_token": f"{user_id}-{token(24)}",
            "access_token_secret": token(33),
        }
        self.add_account(user_id, {"name": name, "username": re.sub(r"\W", "_", name)[:15], **creds})
        return {**creds, "account_id": user_id}

    # --- auth ------------------------------------------------------------------------------
    def _authorised(self, handler: Any) -> Handler:
        def run(req: Request) -> Reply:
            user = self._verify_oauth(req)
            if user is None:
                return problem(401, "Unauthorized", "Unauthorized")
            result: Reply = handler(req, user)
            return result

        return run

    def _verify_oauth(self, req: Request) -> str | None:
        header = req.headers.get("authorization", "")
        if not header.startswith("OAuth "):
            return None
        try:
            oauth = {k: utils.unescape(v) for k, v in utils.parse_authorization_header(header)}
        except (ValueError, IndexError):
            return None
        user_id = next(
            (uid for uid, acc in self.data["accounts"].items() if acc["access_token"] == oauth.get("oauth_token")), None
        )
        if user_id is None:
            return None
        account = self.data["accounts"][user_id]
        if account.get("revoked") or oauth.get("oauth_consumer_key") != account["consumer_key"]:
            return None
        if oauth.get("oauth_signature_method") != "HMAC-SHA1" or "oauth_signature" not in oauth:
            return None
        if not str(oauth.get("oauth_timestamp", "")).isdigit():
            return None
        if abs(int(oauth["oauth_timestamp"]) - self.clock()) > 900:
            return None
        expected = self._signature(req, oauth, account)
        return user_id if signature.safe_string_equals(expected, oauth["oauth_signature"]) else None

    @staticmethod
    def _signature(req: Request, oauth: dict[str, str], account: dict[str, Any]) -> str:
        params = [(k, v) for k, v in oauth.items() if k not in ("oauth_signature", "realm")]
        params += list(req.query.items())
        if req.content_type.startswith("application/x-www-form-urlencoded"):
            params += list(req.form().items())
        uri = signature.base_string_uri(f"https://{req.host}{req.path}")
        base = signature.signature_base_string(req.method, uri, signature.normalize_parameters(params))
        key = f"{utils.escape(account['consumer_secret'])}&{utils.escape(account['access_token_secret'])}"
        digest = hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    # --- endpoints -------------------------------------------------------------------------
    def _create(self, req: Request, user: str) -> Reply:
        body = req.json()
        if not isinstance(body, dict):
            return invalid_request("body", None, "Request body must be a JSON object")
        text = body.get("text") or ""
        media_ids = (body.get("media") or {}).get("media_ids") or []
        if not isinstance(text, str) or not isinstance(media_ids, list):
            return invalid_request("text", text, "Invalid text or media")
        if not text and not media_ids:
            return invalid_request("text", text, "You must provide text or media")
        if len(media_ids) > _MAX.max_images:
            return invalid_request(
                "media.media_ids",
                media_ids,
                f"$.media.media_ids: expected maximum item count: {_MAX.max_images}, found: {len(media_ids)}",
            )
        for media_id in media_ids:
            upload = self.upload(str(media_id))
            if not isinstance(media_id, str) or upload is None or upload["account"] != user:
                return invalid_request("media.media_ids", media_id, "Your media IDs are invalid.")
        if parse_tweet(text).weightedLength > _MAX.max_text:
            return problem(403, "Forbidden", TOO_LONG)
        if text and any(p["text"] == text for p in self.live(user)):
            return problem(403, "Forbidden", DUPLICATE)
        tweet_id = self.state.next_id(self.platform, 1_890_000_000_000_000_000)
        shas = [self.upload(str(m))["sha256"] for m in media_ids]  # type: ignore[index]
        self.add_post(tweet_id, user, text, shas, media_ids=list(media_ids))
        return Reply.of(201, {"data": {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}})

    def _tweet_json(self, post: dict[str, Any], fields: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": post["id"],
            "text": html.escape(post["text"], quote=False),
            "edit_history_tweet_ids": [post["id"]],
        }
        wanted = set(fields.split(",")) if fields else set()
        if "author_id" in wanted:
            out["author_id"] = post["account"]
        if "created_at" in wanted:
            out["created_at"] = _iso(post["created_at"])
        if "attachments" in wanted and post.get("media_ids"):
            out["attachments"] = {"media_keys": [f"3_{m}" for m in post["media_ids"]]}
        return out

    def _get(self, req: Request, user: str) -> Reply:
        tweet_id = req.path.rstrip("/").rsplit("/", 1)[1]
        post = self.live_post(tweet_id)
        if post is None:
            return Reply.of(
                200,
                {
                    "errors": [
                        {
                            "value": tweet_id,
                            "detail": f"Could not find tweet with id: [{tweet_id}].",
                            "title": "Not Found Error",
                            "resource_type": "tweet",
                            "parameter": "id",
                            "resource_id": tweet_id,
                            "type": "https://api.twitter.com/2/problems/resource-not-found",
                        }
                    ]
                },
            )
        return Reply.of(200, {"data": self._tweet_json(post, req.query.get("tweet.fields", ""))})

    def _delete(self, req: Request, user: str) -> Reply:
        tweet_id = req.path.rstrip("/").rsplit("/", 1)[1]
        post = self.live_post(tweet_id)
        if post is None:
            return Reply.of(404, {"errors": [{"message": "Not found"}]})
        if post["account"] != user:
            return problem(403, "Forbidden", "You are not allowed to delete this Tweet.")
        self.remove_post(tweet_id)
        return Reply.of(200, {"data": {"deleted": True}})

    def _upload(self, req: Request, user: str) -> Reply:
        data = req.files().get("media")
        if not data:
            return invalid_request("media", None, "media is required")
        if not data.startswith(_IMAGE_MAGIC):
            return invalid_request("media", None, "media type unrecognized.")
        if len(data) > _MAX.max_image_bytes:
            return invalid_request("media", None, "File size exceeds 5242880 bytes.")
        media_id = self.state.next_id(self.platform, 1_870_000_000_000_000_000)
        self.store_upload(media_id, user, data, category=req.form().get("media_category", ""))
        return Reply.of(
            200,
            {"data": {"id": media_id, "media_key": f"3_{media_id}", "size": len(data), "expires_after_secs": 86400}},
        )

    def _me(self, req: Request, user: str) -> Reply:
        account = self.data["accounts"][user]
        return Reply.of(200, {"data": {"id": user, "name": account["name"], "username": account["username"]}})

    def _user_tweets(self, req: Request, user: str) -> Reply:
        owner = req.path.rstrip("/").split("/")[3]
        limit = max(5, min(100, int(req.query.get("max_results") or 10)))
        posts = list(reversed(self.live(owner)))[:limit]
        fields = req.query.get("tweet.fields", "")
        meta: dict[str, Any] = {"result_count": len(posts)}
        if not posts:
            return Reply.of(200, {"meta": meta})
        meta.update(newest_id=posts[0]["id"], oldest_id=posts[-1]["id"])
        return Reply.of(200, {"data": [self._tweet_json(p, fields) for p in posts], "meta": meta})


def _iso(epoch: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
