"""Translate transport failures and HTTP statuses into the project's connector errors.

The rule that matters: a *write* whose request may have left this machine is OutcomeUnknown,
never Transient, because retrying it blindly could publish twice. Only failures that prove the
request was never sent (DNS, connection refused, connect timeout, the sandbox guard) are
Transient for a write. Reads and deletes can always be repeated, so any failure there is
Transient.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import requests
import urllib3.exceptions

from publisher.connectors.loopback import SandboxEscape
from publisher.errors import ConnectorError, OutcomeUnknown, RateLimited, Transient

DEFAULT_RETRY_AFTER = 60.0


def never_sent(exc: BaseException) -> bool:
    """True when the request provably did not reach the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout | SandboxEscape | requests.exceptions.InvalidURL):
        return True
    if isinstance(exc, requests.exceptions.ProxyError | requests.exceptions.SSLError):
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
            return True
        if isinstance(current, urllib3.exceptions.MaxRetryError) and current.reason is not None:
            current = current.reason
            continue
        current = (
            current.args[0]
            if current.args and isinstance(current.args[0], BaseException)
            else current.__cause__ or current.__context__
        )
    return False


def network_error(platform: str, exc: BaseException, *, write: bool, what: str) -> ConnectorError:
    """The project error for a transport failure of one call (`what` names the call)."""
    if never_sent(exc):
        return Transient(platform, f"{what}: could not connect ({type(exc).__name__}); nothing was sent")
    if not write:
        return Transient(platform, f"{what}: no answer ({type(exc).__name__}); safe to repeat")
    if isinstance(exc, requests.exceptions.Timeout):
        why = "no answer within the timeout"
    else:
        why = f"connection lost before the answer ({type(exc).__name__})"
    return OutcomeUnknown(platform, f"{what}: {why}; the post may exist: reconcile before retrying")


def retry_after_from(headers: Mapping[str, str], now: float | None = None) -> float:
    """Seconds to wait, from X's reset epochs, Retry-After, or Graph's usage headers (> 0)."""
    clock = time.time() if now is None else now
    best = 0.0
    for name in ("x-rate-limit-reset", "x-user-limit-24hour-reset", "x-app-limit-24hour-reset"):
        value = headers.get(name)
        if value and value.strip().isdigit():
            best = max(best, float(value) - clock)
            if name == "x-rate-limit-reset" and best > 0:
                break
    retry_after = headers.get("Retry-After")
    if best <= 0 and retry_after:
        best = _parse_retry_after(retry_after, clock)
    if best <= 0:
        best = _graph_regain_seconds(headers)
    return best if best > 0 else DEFAULT_RETRY_AFTER


def _parse_retry_after(value: str, clock: float) -> float:
    if value.strip().isdigit():
        return float(value)
    try:
        return parsedate_to_datetime(value).timestamp() - clock
    except (TypeError, ValueError):
        return 0.0


def _graph_regain_seconds(headers: Mapping[str, str]) -> float:
    """Graph's X-Business-Use-Case-Usage / X-App-Usage carry estimated_time_to_regain_access (minutes)."""
    minutes = 0.0
    for name in ("X-Business-Use-Case-Usage", "X-Page-Usage", "X-App-Usage"):
        raw = headers.get(name)
        if not raw:
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        minutes = max(minutes, _max_regain(data))
    return minutes * 60.0


def _max_regain(data: object) -> float:
    if isinstance(data, dict):
        here = data.get("estimated_time_to_regain_access")
        value = float(here) if isinstance(here, int | float) else 0.0
        return max([value, *(_max_regain(v) for v in data.values())])
    if isinstance(data, list):
        return max([0.0, *(_max_regain(v) for v in data)])
    return 0.0


def rate_limited(platform: str, headers: Mapping[str, str], what: str) -> RateLimited:
    return RateLimited(platform, retry_after_from(headers), f"{what}: rate limited")
