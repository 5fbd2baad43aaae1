"""Planted credentials never show up in an error message, an error's repr or a connector's repr."""

from __future__ import annotations

import subprocess
import sys

import pytest

from publisher.connectors import ConnectorSettings, make_connector
from publisher.errors import ConnectorError
from publisher.sandbox import Sandbox

from .conftest import CREATE_ENDPOINT, post_for

SETTINGS = ConnectorSettings(timeout=0.5, instagram_pause=0.0, instagram_request_delay=0.0)
SECRET_KEYS = ("consumer_secret", "access_token", "access_token_secret", "password", "session")


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


@pytest.mark.parametrize("platform", ["x", "facebook", "instagram"])
def test_planted_credentials_do_not_leak(sandbox: Sandbox, platform: str) -> None:
    creds = sandbox.provision_account(platform, f"leak check {platform}")
    planted = [creds[k] for k in SECRET_KEYS if k in creds]
    if platform == "instagram":
        planted.append(str(__import__("json").loads(creds["session"])["authorization_data"]["sessionid"]))
    assert all(len(p) >= 16 for p in planted)
    connector = make_connector(platform, creds, settings=SETTINGS, sandbox_port=sandbox.port)
    errors: list[ConnectorError] = []
    for fault in ("429", "500", "503", "reset", "accept_drop", "timeout"):
        sandbox.inject(platform, CREATE_ENDPOINT[platform], fault, seconds=1.0)
        with pytest.raises(ConnectorError) as caught:
            connector.publish(post_for(platform))
        errors.append(caught.value)
    sandbox.revoke(platform, creds["account_id"])
    fresh = make_connector(platform, creds, settings=SETTINGS, sandbox_port=sandbox.port)
    with pytest.raises(ConnectorError) as caught:
        fresh.publish(post_for(platform))
    errors.append(caught.value)
    texts = [repr(connector), repr(fresh), str(connector), *(str(e) for e in errors), *(repr(e) for e in errors)]
    # The SDK exceptions chained as causes are not ours to format, but check they are clean too
    # for these faults (a connect failure's cause can quote a Graph URL with its token: log
    # messages, never tracebacks of connector errors).
    texts += [str(c) for e in errors for c in _chain(e.__cause__)]
    for secret in planted:
        assert not any(secret in text for text in texts), f"a {platform} credential leaked"


def test_importing_connectors_and_sandbox_loads_no_platform_sdk() -> None:
    code = (
        "import sys, publisher.connectors, publisher.sandbox, publisher.connectors.base, "
        "publisher.connectors.loopback; "
        "print(sorted(m for m in ('tweepy', 'facebook', 'instagrapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
