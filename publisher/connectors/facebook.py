"""FacebookConnector: posts on a Facebook Page through facebook-sdk's GraphAPI.

- facebook-sdk 3.1.0 rejects any modern version string and defaults to the dead v2.8, so the
  configured version is set on the object after construction.
- It drops the HTTP status and raises GraphAPIError for every error body; a response hook on
  our session keeps the status and headers so errors are mapped by status *and* code here.
- Text: POST /{page}/feed. One photo: POST /{page}/photos (published). Several: each photo
  unpublished, then /{page}/feed with attached_media[n].
- 5xx / codes 1 and 2 on the create call: code 2 or 503 is Transient ("service temporarily
  unavailable"); anything else is OutcomeUnknown (Graph does not promise nothing was made).
- find_recent: exact message match among the Page's latest 25 feed posts (Graph returns the
  message unchanged). Image count is not compared (it would need the attachments edge).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

import facebook
import requests

from publisher.connectors._net import network_error, rate_limited
from publisher.connectors.base import Presence, PublishedRef, RenderedPost, check_media, made_since
from publisher.connectors.loopback import LoopbackAdapter, enforce_timeout, mount_sandbox
from publisher.domain.limits import LIMITS, Platform
from publisher.errors import AuthFailed, ConnectorError, OutcomeUnknown, RateLimited, Rejected, Transient

if TYPE_CHECKING:
    from publisher.connectors import ConnectorSettings

NAME = "facebook"
RATE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
AUTH_CODES = frozenset({102, 190, 10, *range(200, 300)})


class _Gone(Exception):
    pass


class FacebookConnector:
    platform = NAME
    limits = LIMITS[Platform.FACEBOOK]

    def __init__(
        self, credentials: Mapping[str, str], *, settings: ConnectorSettings, sandbox_port: int | None
    ) -> None:
        self._page = credentials["page_id"]
        session = requests.Session()
        enforce_timeout(session, settings.timeout)
        self.sandbox_adapter: LoopbackAdapter | None = None
        if sandbox_port is not None:
            self.sandbox_adapter = LoopbackAdapter(sandbox_port)
            mount_sandbox(session, self.sandbox_adapter, ("graph.facebook.com",))
        self._seen = threading.local()
        session.hooks["response"].append(self._remember)
        self._graph = facebook.GraphAPI(
            access_token=credentials["access_token"], timeout=settings.timeout, session=session
        )
        self._graph.version = settings.graph_version

    def __repr__(self) -> str:
        return f"<FacebookConnector page={self._page}{' sandbox' if self.sandbox_adapter else ''}>"

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._seen.status = response.status_code
        self._seen.headers = response.headers

    # --- the port ------------------------------------------------------------------------------
    def publish(self, post: RenderedPost) -> PublishedRef:
        check_media(NAME, post, self.limits)
        if len(post.media) == 1:
            item = post.media[0]
            result = self._call(
                self._graph.put_photo,
                write=True,
                what="publishing the photo post",
                image=io.BytesIO(item.data),
                album_path=f"{self._page}/photos",
                message=post.text,
            )
            post_id = result.get("post_id") or f"{self._page}_{result.get('id')}"
        else:
            attached = {
                f"attached_media[{n}]": json.dumps({"media_fbid": self._unpublished(n, item.data)})
                for n, item in enumerate(post.media)
            }
            result = self._call(
                self._graph.put_object,
                self._page,
                "feed",
                write=True,
                what="publishing the post",
                params={"message": post.text, **attached},
            )
            post_id = result.get("id")
        if not post_id or post_id.endswith("_None"):
            raise OutcomeUnknown(NAME, "publishing: Graph answered without a post id; reconcile")
        return _ref(str(post_id))

    def delete(self, ref: PublishedRef) -> None:
        try:
            result = self._call(
                self._graph.delete_object,
                ref.platform_id,
                write=False,
                what=f"deleting post {ref.platform_id}",
                gone_ok=True,
            )
        except _Gone:
            return
        if result.get("success") is not True:
            raise Transient(NAME, f"deleting post {ref.platform_id}: Graph did not confirm the delete")
        if self.lookup(ref) != "gone":
            raise Transient(NAME, f"post {ref.platform_id} is still visible after the delete")

    def lookup(self, ref: PublishedRef) -> Presence:
        try:
            self._call(
                self._graph.get_object,
                ref.platform_id,
                write=False,
                fields="id",
                what=f"looking up post {ref.platform_id}",
                gone_ok=True,
            )
        except _Gone:
            return "gone"
        return "live"

    def find_recent(
        self, post: RenderedPost, since: datetime | None = None, exclude: Collection[str] = ()
    ) -> PublishedRef | None:
        try:
            result = self._call(
                self._graph.get_connections,
                self._page,
                "feed",
                write=False,
                limit=25,
                fields="id,message,created_time",
                what="searching the Page's recent posts",
            )
        except (RateLimited, AuthFailed):
            raise
        except ConnectorError as exc:
            raise OutcomeUnknown(NAME, f"Graph cannot say now ({exc.message})") from exc
        for item in result.get("data") or []:
            if not isinstance(item, dict) or item.get("message", "") != post.text or str(item["id"]) in exclude:
                continue
            if made_since(_graph_time(item.get("created_time")), since):
                return _ref(str(item["id"]))
        return None

    # --- helpers -------------------------------------------------------------------------------
    def _unpublished(self, number: int, data: bytes) -> str:
        result = self._call(
            self._graph.put_photo,
            write=False,
            what=f"uploading image {number + 1}",
            image=io.BytesIO(data),
            album_path=f"{self._page}/photos",
            published="false",
        )
        photo_id = result.get("id")
        if not photo_id:
            raise Transient(NAME, f"uploading image {number + 1}: Graph answered without a photo id")
        return str(photo_id)

    def _call(
        self,
        method: Any,
        *args: Any,
        write: bool,
        what: str,
        gone_ok: bool = False,
        params: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        self._seen.status, self._seen.headers = None, {}
        try:
            result = method(*args, **kwargs, **(params or {}))
        except requests.RequestException as exc:
            raise network_error(NAME, exc, write=write, what=what) from exc
        except (facebook.GraphAPIError, KeyError, ValueError) as exc:
            _raise_graph(
                exc,
                getattr(self._seen, "status", None),
                getattr(self._seen, "headers", {}),
                write=write,
                what=what,
                gone_ok=gone_ok,
            )
        if not isinstance(result, dict):
            raise (OutcomeUnknown if write else Transient)(NAME, f"{what}: unexpected answer from Graph")
        return result


def _ref(post_id: str) -> PublishedRef:
    return PublishedRef(NAME, post_id, f"https://www.facebook.com/{post_id}")


def _error_fields(exc: BaseException) -> tuple[int | None, int | None, bool, str]:
    result = getattr(exc, "result", None)
    error = result.get("error") if isinstance(result, dict) else None
    if not isinstance(error, dict):
        return None, None, False, ""
    code, subcode = error.get("code"), error.get("error_subcode")
    message = str(error.get("error_user_msg") or error.get("message") or "")[:300]
    return (
        code if isinstance(code, int) else None,
        subcode if isinstance(subcode, int) else None,
        bool(error.get("is_transient")),
        message,
    )


def _raise_graph(
    exc: BaseException, status: int | None, headers: Mapping[str, str], *, write: bool, what: str, gone_ok: bool
) -> NoReturn:
    code, subcode, transient, said = _error_fields(exc)
    error: ConnectorError
    if gone_ok and code == 100 and subcode == 33:
        raise _Gone from exc
    if status == 429 or code in RATE_CODES:
        error = rate_limited(NAME, headers, what)
    elif code in AUTH_CODES or status == 401:
        error = AuthFailed(
            NAME,
            f"{what}: Graph refused the Page token (code {code}): generate a new "
            "long-lived Page access token with pages_manage_posts and store it with "
            "'publisher secrets set'",
        )
    elif code == 2635:
        error = Rejected(NAME, f"{what}: Graph says the API version is retired: raise graph_version in the config")
    elif code == 2 or status == 503:
        error = Transient(NAME, f"{what}: Graph is temporarily unavailable; try later")
    elif code == 1 or transient or code is None or (status is not None and status >= 500):
        kind = OutcomeUnknown if write else Transient
        tail = "it may have been created; reconcile" if write else "try later"
        error = kind(NAME, f"{what}: Graph failed (status {status}, code {code}); {tail}")
    else:
        error = Rejected(NAME, f"{what}: Graph refused it (code {code}): {said or 'no reason given'}")
    raise error from exc


def _graph_time(value: object) -> datetime | None:
    """Graph's created_time ('2026-11-26T09:00:00+0000'); None if absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None
