"""SandboxGraph: the Graph API Page endpoints the FacebookConnector uses, with Graph's error bodies.

Accepts only the page's own access token (query string or body) and only live API versions in
the path; a dead version gets Graph's #2635 answer, as facebook-sdk's default v2.8 would.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from publisher.domain.limits import LIMITS, Platform
from publisher.sandbox.emulator import Emulator, Handler, token
from publisher.sandbox.http import Reply, Request

LIVE_GRAPH_VERSIONS = frozenset({"v22.0", "v23.0", "v24.0", "v25.0", "v26.0"})
_MAX = LIMITS[Platform.FACEBOOK]
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


def graph_error(
    status: int,
    code: int,
    message: str,
    kind: str = "OAuthException",
    subcode: int | None = None,
    transient: bool = False,
    headers: dict[str, str] | None = None,
) -> Reply:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": "A" + token(8)}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    return Reply.of(status, {"error": error}, headers)


def _missing(verb: str, object_id: str) -> Reply:
    return graph_error(
        400,
        100,
        f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be loaded due "
        "to missing permissions, or does not support this operation. Please read the Graph API "
        "documentation at https://developers.facebook.com/docs/graph-api",
        "GraphMethodException",
        subcode=33,
    )


class SandboxGraph(Emulator):
    platform = "facebook"
    hosts = frozenset({"graph.facebook.com"})

    def __init__(self, *args: Any, versions: frozenset[str] = LIVE_GRAPH_VERSIONS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.versions = versions

    def route(self, req: Request) -> tuple[str, Handler] | None:
        match = re.fullmatch(r"/(v\d+\.\d+)/([\w]+)(?:/(\w+))?/?", req.path)
        if match is None:
            return None
        version, node, edge = match.groups()
        if version not in self.versions:
            return "version", lambda _req: graph_error(
                400, 2635, f"(#2635) You are calling a deprecated version of the Graph API ({version})."
            )
        table: dict[tuple[str, str | None], tuple[str, Any]] = {
            ("POST", "feed"): ("feed", self._feed),
            ("GET", "feed"): ("list_feed", self._list_feed),
            ("POST", "photos"): ("photos", self._photos),
            ("DELETE", None): ("delete", self._delete),
            ("GET", None): ("get", self._get),
        }
        found = table.get((req.method, edge))
        if found is None:
            return None
        name, handler = found
        return name, lambda r: handler(r, node)

    def not_found(self, req: Request) -> Reply:
        return graph_error(400, 100, f"Unknown path components: {req.path}", "OAuthException")

    def fault_reply(self, kind: str, seconds: float) -> Reply:
        if kind == "429":
            usage = {
                "0": [
                    {
                        "type": "pages",
                        "call_count": 100,
                        "total_cputime": 40,
                        "total_time": 60,
                        "estimated_time_to_regain_access": max(1, round((seconds or 60) / 60)),
                    }
                ]
            }
            return graph_error(
                400, 32, "(#32) Page request limit reached", headers={"X-Business-Use-Case-Usage": json.dumps(usage)}
            )
        if kind == "503":
            return graph_error(503, 2, "(#2) Service temporarily unavailable", transient=True)
        if kind == "duplicate":
            return graph_error(400, 506, "(#506) Duplicate status message", "OAuthException")
        return graph_error(500, 1, "An unknown error has occurred.", transient=True)

    def provision(self, name: str) -> dict[str, str]:
        page_id = self.state.next_id(self.platform, 100_000_000_000_000)
        access_token = "EAAG" + token(48)
        self.add_account(page_id, {"name": name, "access_token": access_token})
        return {"page_id": page_id, "access_token": access_token, "account_id": page_id}

    # --- auth ------------------------------------------------------------------------------
    def _token_page(self, req: Request) -> tuple[str | None, Reply | None]:
        supplied = req.query.get("access_token") or req.form().get("access_token")
        if not supplied:
            return None, graph_error(400, 104, "An access token is required to request this resource.")
        for page_id, account in self.data["accounts"].items():
            if account["access_token"] == supplied:
                if account.get("revoked"):
                    return None, graph_error(
                        400,
                        190,
                        "Error validating access token: The session has "
                        "been invalidated because the user changed their password "
                        "or Facebook has changed the session for security reasons.",
                        subcode=460,
                    )
                return page_id, None
        return None, graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")

    def _page_edge(self, req: Request, node: str) -> tuple[str | None, Reply | None]:
        page, err = self._token_page(req)
        if err is not None:
            return None, err
        if node != page:
            return None, graph_error(
                403, 200, "(#200) The user hasn't authorized the application to perform this action", "OAuthException"
            )
        return page, None

    # --- endpoints -------------------------------------------------------------------------
    def _feed(self, req: Request, node: str) -> Reply:
        page, err = self._page_edge(req, node)
        if page is None:
            return err  # type: ignore[return-value]
        form = req.form()
        message = form.get("message", "")
        attached = [
            json.loads(v)["media_fbid"]
            for k, v in sorted(form.items(), key=_attached_order)
            if k.startswith("attached_media[")
        ]
        if not message and not attached and not form.get("link"):
            return graph_error(400, 100, "(#100) Missing message or attachment", "OAuthException")
        if len(message) > _MAX.max_text:
            return graph_error(400, 100, "(#100) Param message must be at most 63206 characters long")
        if len(attached) > _MAX.max_images:
            return graph_error(400, 100, f"(#100) attached_media must have at most {_MAX.max_images} items")
        shas = []
        for photo_id in attached:
            upload = self.upload(str(photo_id))
            if upload is None or upload["account"] != page or upload.get("used"):
                return graph_error(400, 100, f"(#100) Invalid media_fbid {photo_id}")
            shas.append(upload["sha256"])
        if message and any(p["text"] == message for p in self.live(page)[-10:]):
            return graph_error(400, 506, "(#506) Duplicate status message")
        for photo_id in attached:
            self.data["uploads"][str(photo_id)]["used"] = True
        post_id = f"{page}_{self.state.next_id(self.platform, 900_000_000_000_000)}"
        self.add_post(post_id, page, message, shas, photo_ids=[str(p) for p in attached])
        return Reply.of(200, {"id": post_id})

    def _photos(self, req: Request, node: str) -> Reply:
        page, err = self._page_edge(req, node)
        if page is None:
            return err  # type: ignore[return-value]
        files, form = req.files(), req.form()
        data = files.get("source") or next(iter(files.values()), b"")
        if not data:
            return graph_error(400, 324, "(#324) Requires upload file")
        if not data.startswith(_IMAGE_MAGIC) or len(data) > _MAX.max_image_bytes:
            return graph_error(400, 100, "(#100) Invalid image: the file is not a supported image or is too large")
        photo_id = self.state.next_id(self.platform, 800_000_000_000_000)
        published = form.get("published", "true").lower() not in ("false", "0")
        self.store_upload(photo_id, page, data, published=published)
        if not published:
            return Reply.of(200, {"id": photo_id})
        post_id = f"{page}_{photo_id}"
        self.add_post(
            post_id, page, form.get("message", ""), [self.data["uploads"][photo_id]["sha256"]], photo_ids=[photo_id]
        )
        return Reply.of(200, {"id": photo_id, "post_id": post_id})

    def _owned(self, req: Request, object_id: str, verb: str) -> tuple[dict[str, Any] | None, Reply | None]:
        page, err = self._token_page(req)
        if err is not None:
            return None, err
        post = self.live_post(object_id)
        if post is None or post["account"] != page:
            return None, _missing(verb, object_id)
        return post, None

    def _delete(self, req: Request, node: str) -> Reply:
        post, err = self._owned(req, node, "delete")
        if post is None:
            return err  # type: ignore[return-value]
        self.remove_post(node)
        return Reply.of(200, {"success": True})

    def _get(self, req: Request, node: str) -> Reply:
        post, err = self._owned(req, node, "get")
        if post is None:
            return err  # type: ignore[return-value]
        return Reply.of(200, self._post_json(post))

    def _list_feed(self, req: Request, node: str) -> Reply:
        page, err = self._page_edge(req, node)
        if page is None:
            return err  # type: ignore[return-value]
        limit = max(1, min(100, int(req.query.get("limit") or 25)))
        posts = list(reversed(self.live(page)))[:limit]
        return Reply.of(200, {"data": [self._post_json(p) for p in posts], "paging": {}})

    @staticmethod
    def _post_json(post: dict[str, Any]) -> dict[str, Any]:
        created = datetime.fromtimestamp(post["created_at"], UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
        out: dict[str, Any] = {"id": post["id"], "created_time": created}
        if post["text"]:
            out["message"] = post["text"]
        return out


def _attached_order(item: tuple[str, str]) -> int:
    match = re.search(r"\[(\d+)\]", item[0])
    return int(match.group(1)) if match else -1
