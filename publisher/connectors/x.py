"""XConnector: posts on X through tweepy's API v2 Client (OAuth 1.0a user context).

- Never `wait_on_rate_limit`: a 429 becomes RateLimited and the queue reschedules.
- Every call has a timeout (tweepy sets none): `enforce_timeout` on `client.session`.
- Images go through X's v2 upload endpoint (tweepy has none) on the same session.
- 5xx on the create call: 503 is Transient (X refused before processing); any other 5xx is
  OutcomeUnknown, since X does not promise that nothing was created.
- find_recent: exact text match among the account's latest 20 posts, after undoing X's
  changes (HTML entities, t.co links) and with the same number of images.
"""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

import requests
import tweepy
from requests_oauthlib import OAuth1

from publisher.connectors._net import network_error, rate_limited
from publisher.connectors.base import MediaItem, Presence, PublishedRef, RenderedPost, check_media, made_since
from publisher.connectors.loopback import LoopbackAdapter, enforce_timeout, mount_sandbox
from publisher.domain.limits import LIMITS, Platform
from publisher.errors import AuthFailed, ConnectorError, OutcomeUnknown, RateLimited, Rejected, Transient

if TYPE_CHECKING:
    from publisher.connectors import ConnectorSettings

UPLOAD_URL = "https://api.x.com/2/media/upload"
HOSTS = ("api.twitter.com", "api.x.com", "upload.twitter.com", "upload.x.com")
_URL = re.compile(r"https?://\S+")
NAME = "x"


class XConnector:
    platform = NAME
    limits = LIMITS[Platform.X]

    def __init__(
        self, credentials: Mapping[str, str], *, settings: ConnectorSettings, sandbox_port: int | None
    ) -> None:
        self._client = tweepy.Client(
            consumer_key=credentials["consumer_key"],
            consumer_secret=credentials["consumer_secret"],
            access_token=credentials["access_token"],
            access_token_secret=credentials["access_token_secret"],
            wait_on_rate_limit=False,
        )
        self._timeout = settings.timeout
        self._auth = OAuth1(
            credentials["consumer_key"],
            credentials["consumer_secret"],
            credentials["access_token"],
            credentials["access_token_secret"],
        )
        self._user_id: str | None = None
        enforce_timeout(self._client.session, settings.timeout)
        self.sandbox_adapter: LoopbackAdapter | None = None
        if sandbox_port is not None:
            self.sandbox_adapter = LoopbackAdapter(sandbox_port)
            mount_sandbox(self._client.session, self.sandbox_adapter, HOSTS)

    def __repr__(self) -> str:
        sandbox = " sandbox" if self.sandbox_adapter else ""
        return f"<XConnector{sandbox}>"

    # --- the port ------------------------------------------------------------------------------
    def publish(self, post: RenderedPost) -> PublishedRef:
        check_media(NAME, post, self.limits)
        media_ids = [self._upload(number, item) for number, item in enumerate(post.media, start=1)]
        try:
            response = self._client.create_tweet(text=post.text or None, media_ids=media_ids or None, user_auth=True)
        except (tweepy.TweepyException, requests.RequestException) as exc:
            _raise_mapped(exc, write=True, what="creating the post")
        tweet_id = str((response.data or {}).get("id", ""))
        if not tweet_id:
            raise OutcomeUnknown(NAME, "creating the post: X answered without a post id; reconcile")
        return _ref(tweet_id)

    def delete(self, ref: PublishedRef) -> None:
        try:
            response = self._client.delete_tweet(ref.platform_id, user_auth=True)
        except tweepy.NotFound:
            return
        except (tweepy.TweepyException, requests.RequestException) as exc:
            _raise_mapped(exc, write=False, what=f"deleting post {ref.platform_id}")
        if not (response.data or {}).get("deleted"):
            raise Transient(NAME, f"deleting post {ref.platform_id}: X did not confirm the delete")
        if self.lookup(ref) != "gone":
            raise Transient(NAME, f"post {ref.platform_id} is still visible after the delete")

    def lookup(self, ref: PublishedRef) -> Presence:
        try:
            response = self._client.get_tweet(ref.platform_id, user_auth=True)
        except tweepy.NotFound:
            return "gone"
        except (tweepy.TweepyException, requests.RequestException) as exc:
            _raise_mapped(exc, write=False, what=f"looking up post {ref.platform_id}")
        if response.data is not None:
            return "live"
        errors = response.errors or []
        if any("resource-not-found" in str(e.get("type", "")) or e.get("title") == "Not Found Error" for e in errors):
            return "gone"
        raise Transient(NAME, f"looking up post {ref.platform_id}: X gave neither the post nor 'not found'")

    def find_recent(
        self, post: RenderedPost, since: datetime | None = None, exclude: Collection[str] = ()
    ) -> PublishedRef | None:
        try:
            user_id = self._me()
            response = self._client.get_users_tweets(
                user_id, max_results=20, tweet_fields=["attachments", "created_at"], user_auth=True
            )
        except (tweepy.TweepyException, requests.RequestException) as exc:
            _raise_unknown(exc, "searching the account's recent posts")
        wanted = _normalise(post.text)
        for tweet in response.data or []:
            media_keys = ((tweet.attachments or {}).get("media_keys")) or []
            same = _normalise(tweet.text) == wanted and len(media_keys) == len(post.media)
            if same and str(tweet.id) not in exclude and made_since(tweet.created_at, since):
                return _ref(str(tweet.id))
        return None

    # --- helpers -------------------------------------------------------------------------------
    def _me(self) -> str:
        if self._user_id is None:
            response = self._client.get_me(user_auth=True)
            self._user_id = str(response.data.id)
        return self._user_id

    def _upload(self, number: int, item: MediaItem) -> str:
        what = f"uploading image {number}"
        try:
            response = self._client.session.post(
                UPLOAD_URL,
                files={"media": ("image", item.data, item.mime)},
                data={"media_category": "tweet_image"},
                auth=self._auth,
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise network_error(NAME, exc, write=False, what=what) from exc
        if response.status_code >= 400:
            _raise_status(response, write=False, what=what, exc=None)
        try:
            return str(response.json()["data"]["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise Transient(NAME, f"{what}: X answered without a media id") from exc


def _ref(tweet_id: str) -> PublishedRef:
    return PublishedRef(NAME, tweet_id, f"https://x.com/i/web/status/{tweet_id}")


def _normalise(text: str) -> str:
    return " ".join(_URL.sub(" ", html.unescape(text)).split())


def _raise_unknown(exc: BaseException, what: str) -> NoReturn:
    """find_recent: rate and auth problems keep their meaning; anything else means 'cannot say'."""
    try:
        _raise_mapped(exc, write=False, what=what)
    except (RateLimited, AuthFailed):
        raise
    except ConnectorError as mapped:
        raise OutcomeUnknown(NAME, f"{what}: X cannot say now ({mapped.message})") from exc


def _raise_mapped(exc: BaseException, *, write: bool, what: str) -> NoReturn:
    if isinstance(exc, requests.RequestException):
        raise network_error(NAME, exc, write=write, what=what) from exc
    response = getattr(exc, "response", None)
    if isinstance(exc, tweepy.HTTPException) and response is not None:
        _raise_status(response, write=write, what=what, exc=exc)
    kind = OutcomeUnknown if write else Transient
    raise kind(NAME, f"{what}: unexpected answer from X ({type(exc).__name__})") from exc


def _messages(response: requests.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(e.get("message") or e.get("detail") or "") for e in body.get("errors") or [] if isinstance(e, dict)]
    parts.append(str(body.get("detail") or ""))
    return "; ".join(p for p in parts if p)[:300]


def _raise_status(response: requests.Response, *, write: bool, what: str, exc: BaseException | None) -> NoReturn:
    status, said = response.status_code, _messages(response)
    body_type = ""
    with contextlib.suppress(ValueError, AttributeError):
        body_type = str(response.json().get("type", ""))
    error: ConnectorError
    if status == 429:
        error = rate_limited(NAME, response.headers, what)
    elif status == 401:
        error = AuthFailed(
            NAME,
            f"{what}: X refused the app's credentials (401): regenerate the access "
            "token and secret in the X developer portal and store them with 'publisher secrets set'",
        )
    elif status == 402:
        error = AuthFailed(
            NAME,
            f"{what}: X says the API credits are used up (402): an admin must top up "
            "or change the plan in the X developer portal",
        )
    elif status == 403 and ("oauth1-permissions" in body_type or "client-forbidden" in body_type):
        error = AuthFailed(
            NAME,
            f"{what}: the X app lacks write permission ({said}): set it to "
            "'Read and write' in the developer portal and regenerate the tokens",
        )
    elif status in (400, 403, 404, 413, 422):
        error = Rejected(NAME, f"{what}: X refused it ({status}): {said or 'no reason given'}")
    elif status == 503 or (status >= 500 and not write):
        error = Transient(NAME, f"{what}: X is unavailable ({status}); try later")
    elif status >= 500:
        error = OutcomeUnknown(NAME, f"{what}: X failed ({status}) and may have created it; reconcile")
    else:
        error = (OutcomeUnknown if write else Transient)(NAME, f"{what}: unexpected status {status} from X")
    raise error from exc
