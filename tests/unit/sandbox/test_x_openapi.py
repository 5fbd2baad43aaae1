"""The X emulator's tweet create/get/delete bodies match X's own OpenAPI description (v2.62)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from openapi_schema_validator import OAS30Validator
from requests_oauthlib import OAuth1

from publisher.sandbox import Sandbox

SPEC = Path(__file__).resolve().parents[3].parent / "shared" / "specs" / "x" / "openapi-2.62.yaml"


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    if not SPEC.exists():
        pytest.skip(f"{SPEC} not present")
    with SPEC.open(encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    return dict(spec["components"])


def check(components: dict[str, Any], schema: str, body: object) -> None:
    OAS30Validator({"$ref": f"#/components/schemas/{schema}", "components": components}).validate(body)


def test_create_get_delete_match_the_openapi_schemas(
    sandbox: Sandbox, http: requests.Session, components: dict[str, Any]
) -> None:
    creds = sandbox.provision_account("x", "openapi")
    auth = OAuth1(creds["consumer_key"], creds["consumer_secret"], creds["access_token"], creds["access_token_secret"])
    request_body = {"text": "Sports day & prize giving"}
    check(components, "TweetCreateRequest", request_body)
    created = http.post("https://api.x.com/2/tweets", json=request_body, auth=auth, timeout=5)
    assert created.status_code == 201
    check(components, "TweetCreateResponse", created.json())
    tweet_id = created.json()["data"]["id"]
    got = http.get(f"https://api.x.com/2/tweets/{tweet_id}", auth=auth, timeout=5)
    check(components, "Get2TweetsIdResponse", got.json())
    assert got.json()["data"]["text"] == "Sports day &amp; prize giving"  # X escapes entities
    deleted = http.delete(f"https://api.x.com/2/tweets/{tweet_id}", auth=auth, timeout=5)
    check(components, "TweetDeleteResponse", deleted.json())
    assert deleted.json() == {"data": {"deleted": True}}
    gone = http.get(f"https://api.x.com/2/tweets/{tweet_id}", auth=auth, timeout=5)
    assert gone.status_code == 200
    assert "data" not in gone.json()
    check(components, "Get2TweetsIdResponse", gone.json())
    assert gone.json()["errors"][0]["title"] == "Not Found Error"


def test_error_bodies_are_problems(sandbox: Sandbox, http: requests.Session, components: dict[str, Any]) -> None:
    creds = sandbox.provision_account("x", "problems")
    auth = OAuth1(creds["consumer_key"], creds["consumer_secret"], creds["access_token"], creds["access_token_secret"])
    sandbox.inject("x", "create", "429", seconds=60)
    limited = http.post("https://api.x.com/2/tweets", json={"text": "a"}, auth=auth, timeout=5)
    assert limited.status_code == 429
    assert int(limited.headers["x-rate-limit-reset"]) > 0
    assert limited.headers["Content-Type"].startswith("application/problem+json")
    too_long = http.post("https://api.x.com/2/tweets", json={"text": "a" * 281}, auth=auth, timeout=5)
    assert too_long.status_code == 403
    for response in (limited, too_long):
        body = response.json()
        assert {"title", "type", "status", "detail"} <= set(body)
