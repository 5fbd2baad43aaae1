"""InstagramConnector: posts on Instagram through instagrapi (the private mobile API).

- The session is restored from the stored settings JSON; a fresh login (with a TOTP code when a
  seed is stored) happens only when there is no valid session, and `save_session` receives the
  new settings whenever they change. Never one login per post.
- No prompt ever: challenge / password-change handlers raise, `with_challenge_flow=False`, and
  `handle_exception` re-raises so instagrapi never retries a configure call on its own.
- The approved bytes are what is uploaded. instagrapi's photo_upload/album_upload re-encode
  every image (crop, resize to 1080, JPEG quality 75), so this connector does the upload step
  itself with instagrapi's headers and session, then calls instagrapi's photo_configure /
  album_configure (one attempt, no hidden 3 s sleeps beyond `instagram_pause`).
- JPEG only, aspect 4:5 to 1.91:1: anything else is Rejected before any network call.
- 5xx on configure: 503 is Transient; any other 5xx is OutcomeUnknown.
- find_recent: exact caption match and same number of images among the latest 20 posts.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

import requests
from instagrapi import Client, config
from instagrapi import exceptions as ig
from instagrapi.extractors import extract_media_v1

from publisher.connectors._net import DEFAULT_RETRY_AFTER, network_error, retry_after_from
from publisher.connectors.base import MediaItem, Presence, PublishedRef, RenderedPost, check_media, made_since
from publisher.connectors.loopback import LoopbackAdapter, enforce_timeout, mount_sandbox
from publisher.domain.limits import LIMITS, Platform
from publisher.errors import AuthFailed, ConnectorError, OutcomeUnknown, RateLimited, Rejected, Transient

if TYPE_CHECKING:
    from publisher.connectors import ConnectorSettings

NAME = "instagram"
HOSTS = ("i.instagram.com", "b.i.instagram.com", "www.instagram.com")
PERSON_NEEDED = (
    ig.ChallengeError,
    ig.TwoFactorRequired,
    ig.LoginRequired,
    ig.ReloginAttemptExceeded,
    ig.BadPassword,
    ig.BadCredentials,
    ig.AccountSuspended,
    ig.ClientUnauthorizedError,
    ig.ClientLoginRequired,
    ig.CaptchaChallengeRequired,
    ig.FeedbackRequired,
    ig.SentryBlock,
    ig.ProxyAddressIsBlocked,
    ig.ClientNeedsUpgradeError,
)
THROTTLED = (ig.PleaseWaitFewMinutes, ig.ClientThrottledError, ig.RateLimitError)
GONE = (ig.MediaNotFound, ig.MediaUnavailable)
INSTAGRAM_RETRY_AFTER = 600.0


def _refuse_prompt(*_args: Any) -> str:
    raise ig.ChallengeRequired("Instagram asked for a security code or a new password")


def _reraise(_client: Any, exc: BaseException) -> None:
    raise exc


class InstagramConnector:
    platform = NAME
    limits = LIMITS[Platform.INSTAGRAM]

    def __init__(
        self,
        credentials: Mapping[str, str],
        *,
        settings: ConnectorSettings,
        sandbox_port: int | None,
        save_session: Callable[[str], None] | None = None,
    ) -> None:
        self._username = credentials["username"]
        self._password = credentials["password"]
        self._totp_seed = credentials.get("totp_seed") or None
        self._pause = settings.instagram_pause
        self._save_session = save_session
        stored = json.loads(credentials["session"]) if credentials.get("session") else {}
        # What the caller holds; the first login saves the completed settings (device, uuids)
        # so the account keeps one stable device from then on.
        self._last_settings = json.dumps(stored, sort_keys=True, default=str)
        stored.update(session_retry_total=0, request_timeout=settings.instagram_request_delay)
        client = Client(
            with_challenge_flow=False, session_retry_total=0, request_timeout=settings.instagram_request_delay
        )
        client.set_settings(stored)  # re-mounts instagrapi's adapters: ours go on afterwards
        client.challenge_code_handler = _refuse_prompt
        client.change_password_handler = _refuse_prompt
        client.handle_exception = _reraise
        for session in (client.private, client.public):
            enforce_timeout(session, settings.timeout)
        self.sandbox_adapter: LoopbackAdapter | None = None
        if sandbox_port is not None:
            self.sandbox_adapter = LoopbackAdapter(sandbox_port)
            for session in (client.private, client.public):
                mount_sandbox(session, self.sandbox_adapter, HOSTS)
        self._client = client
        self._logged_in = False

    def __repr__(self) -> str:
        return f"<InstagramConnector{' sandbox' if self.sandbox_adapter else ''}>"

    # --- the port ------------------------------------------------------------------------------
    def publish(self, post: RenderedPost) -> PublishedRef:
        check_media(NAME, post, self.limits)
        self._login()
        album = len(post.media) > 1
        uploads = [self._rupload(n, item, album) for n, item in enumerate(post.media, start=1)]
        if self._pause:
            time.sleep(self._pause)
        try:
            if album:
                result = self._client.album_configure([_child(*u) for u in uploads], post.text)
            else:
                result = self._client.photo_configure(uploads[0][0], uploads[0][1], uploads[0][2], post.text)
            media = extract_media_v1(result["media"])
        except Exception as exc:
            _raise_mapped(exc, write=True, what="publishing the post")
        finally:
            self._persist()
        return PublishedRef(NAME, str(media.id), f"https://www.instagram.com/p/{media.code}/")

    def delete(self, ref: PublishedRef) -> None:
        self._login()
        try:
            done = self._client.media_delete(ref.platform_id)
        except GONE:
            return
        except Exception as exc:
            _raise_mapped(exc, write=False, what=f"deleting post {ref.platform_id}")
        finally:
            self._persist()
        if done is not True:
            raise Transient(NAME, f"deleting post {ref.platform_id}: Instagram did not confirm the delete")
        if self.lookup(ref) != "gone":
            raise Transient(NAME, f"post {ref.platform_id} is still visible after the delete")

    def lookup(self, ref: PublishedRef) -> Presence:
        self._login()
        try:
            self._client.media_info_v1(ref.platform_id.split("_", 1)[0])
        except GONE:
            return "gone"
        except Exception as exc:
            _raise_mapped(exc, write=False, what=f"looking up post {ref.platform_id}")
        return "live"

    def find_recent(
        self, post: RenderedPost, since: datetime | None = None, exclude: Collection[str] = ()
    ) -> PublishedRef | None:
        what = "searching the account's recent posts"
        try:
            self._login()
            # Not user_medias_v1: it swallows network errors and answers "no posts".
            result = self._client.private_request(
                f"feed/user/{self._client.user_id}/", params={"count": 20, "max_id": ""}
            )
            medias = [extract_media_v1(item) for item in result.get("items") or []]
        except (RateLimited, AuthFailed):
            raise
        except Exception as exc:
            try:
                _raise_mapped(exc, write=False, what=what)
            except (RateLimited, AuthFailed):
                raise
            except ConnectorError as mapped:
                raise OutcomeUnknown(NAME, f"Instagram cannot say now ({mapped.message})") from exc
        for media in medias:
            count = len(media.resources) if media.media_type == 8 else 1
            same = media.caption_text == post.text and count == len(post.media)
            if same and str(media.id) not in exclude and made_since(media.taken_at, since):
                return PublishedRef(NAME, str(media.id), f"https://www.instagram.com/p/{media.code}/")
        return None

    # --- helpers -------------------------------------------------------------------------------
    def _login(self) -> None:
        if self._logged_in:
            return
        code = Client.totp_generate_code(self._totp_seed) if self._totp_seed else ""
        try:
            self._client.login(self._username, self._password, verification_code=code)
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            busy = isinstance(status, int) and (status >= 500 or status == 429)  # the platform, not the account
            if busy or isinstance(exc, (requests.RequestException, ig.ClientConnectionError, *THROTTLED)):
                _raise_mapped(exc, write=False, what="logging in")
            raise AuthFailed(
                NAME,
                "logging in failed (the saved session is no longer valid and a fresh "
                "login was refused): sign in on the Trust's phone, clear any security check, "
                "then store a new session with 'publisher secrets set'",
            ) from exc
        self._logged_in = True
        self._persist()

    def _persist(self) -> None:
        current = json.dumps(self._client.get_settings(), sort_keys=True, default=str)
        if current != self._last_settings:
            self._last_settings = current
            if self._save_session is not None:
                self._save_session(current)

    def _rupload(self, number: int, item: MediaItem, album: bool) -> tuple[str, int, int]:
        """Upload the exact approved bytes (instagrapi's photo_rupload, minus the re-encoding)."""
        upload_id = new_upload_id()
        name = f"{upload_id}_0_{random.randint(1_000_000_000, 9_999_999_999)}"  # noqa: S311 - not secret
        params = {
            "retry_context": '{"num_step_auto_retry":0,"num_reupload":0,"num_step_manual_retry":0}',
            "media_type": "1",
            "xsharing_user_ids": "[]",
            "upload_id": upload_id,
            "image_compression": json.dumps({"lib_name": "moz", "lib_version": "3.1.m", "quality": "80"}),
        }
        if album:
            params["is_sidecar"] = "1"
        headers = self._client.private_headers(
            {
                "Accept-Encoding": "gzip",
                "X-Instagram-Rupload-Params": json.dumps(params),
                "X_FB_PHOTO_WATERFALL_ID": str(random.getrandbits(64)),
                "X-Entity-Type": item.mime,
                "Offset": "0",
                "X-Entity-Name": name,
                "X-Entity-Length": str(len(item.data)),
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(item.data)),
            }
        )
        what = f"uploading image {number}"
        try:
            response = self._client.private.post(
                f"https://{config.API_DOMAIN}/rupload_igphoto/{name}", data=item.data, headers=headers
            )
        except requests.RequestException as exc:
            raise network_error(NAME, exc, write=False, what=what) from exc
        if response.status_code != 200:
            _raise_status(response.status_code, response, write=False, what=what, exc=None)
        return upload_id, item.width, item.height


_upload_lock = threading.Lock()
_last_upload_id = 0


def new_upload_id() -> str:
    """A millisecond timestamp, as instagrapi makes them, but never the same one twice in this
    process: two accounts uploading in the same millisecond would otherwise share an id, and the
    second upload would replace the first (seen as media_needs_reupload, 1 in 2,000 in a burst)."""
    global _last_upload_id
    with _upload_lock:
        _last_upload_id = max(int(time.time() * 1000), _last_upload_id + 1)
        return str(_last_upload_id)


def _child(upload_id: str, width: int, height: int) -> dict[str, Any]:
    return {
        "upload_id": upload_id,
        "scene_capture_type": "",
        "scene_type": None,
        "edits": json.dumps({"crop_original_size": [width, height], "crop_center": [0.0, -0.0], "crop_zoom": 1.0}),
        "extra": json.dumps({"source_width": width, "source_height": height}),
    }


def _said(response: requests.Response | None) -> str:
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    debug = body.get("debug_info")
    debug = debug if isinstance(debug, dict) else {}
    return str(body.get("message") or debug.get("message") or "")[:300]


def _raise_status(
    status: int, response: requests.Response | None, *, write: bool, what: str, exc: BaseException | None
) -> NoReturn:
    said = _said(response)
    error: ConnectorError
    if status == 429 or "Please wait a few minutes" in said:
        headers = response.headers if response is not None else {}
        seconds = retry_after_from(headers) if headers.get("Retry-After") else INSTAGRAM_RETRY_AFTER
        error = RateLimited(NAME, seconds, f"{what}: Instagram asks to wait")
    elif status in (401, 403) and said in ("login_required", ""):
        error = AuthFailed(
            NAME,
            f"{what}: Instagram logged the session out: sign in again and store "
            "the new session with 'publisher secrets set'",
        )
    elif status == 503 or (status >= 500 and not write):
        error = Transient(NAME, f"{what}: Instagram is unavailable ({status}); try later")
    elif status >= 500:
        error = OutcomeUnknown(NAME, f"{what}: Instagram failed ({status}) and may have posted it; reconcile")
    else:
        error = Rejected(NAME, f"{what}: Instagram refused it ({status}): {said or 'no reason given'}")
    raise error from exc


def _raise_mapped(exc: BaseException, *, write: bool, what: str) -> NoReturn:
    if isinstance(exc, ConnectorError):
        raise exc
    if isinstance(exc, PERSON_NEEDED):
        raise AuthFailed(
            NAME,
            f"{what}: Instagram needs a person ({type(exc).__name__}): open the app on "
            "the Trust's phone, clear the security check, then store a fresh session with "
            "'publisher secrets set'",
        ) from exc
    if isinstance(exc, THROTTLED):
        raise RateLimited(NAME, INSTAGRAM_RETRY_AFTER, f"{what}: Instagram asks to wait") from exc
    network = exc if isinstance(exc, requests.RequestException) else exc.__context__
    if isinstance(exc, requests.RequestException | ig.ClientConnectionError | ig.ClientIncompleteReadError):
        cause = network if isinstance(network, requests.RequestException) else exc
        raise network_error(NAME, cause, write=write, what=what) from exc
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(exc, ig.ClientError) and isinstance(status, int) and status >= 400:
        _raise_status(status, response, write=write, what=what, exc=exc)
    if isinstance(exc, ig.ClientError) and not isinstance(exc, ig.ClientJSONDecodeError) and status is None:
        message = str(getattr(exc, "message", "") or "")[:300]
        raise Rejected(NAME, f"{what}: Instagram refused it: {message or type(exc).__name__}") from exc
    kind = OutcomeUnknown if write else Transient
    raise kind(NAME, f"{what}: unexpected answer from Instagram ({type(exc).__name__})") from exc


__all__ = ["DEFAULT_RETRY_AFTER", "InstagramConnector"]
