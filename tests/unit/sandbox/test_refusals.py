"""The emulators refuse what the platforms refuse, in the platforms' own words."""

from __future__ import annotations

import base64
import json

import facebook
import pytest
import requests
import tweepy
from requests_oauthlib import OAuth1

from publisher.sandbox import Sandbox

from .conftest import jpeg


def _x_client(sandbox: Sandbox, creds: dict[str, str], **override: str) -> tweepy.Client:
    from publisher.connectors.loopback import LoopbackAdapter, mount_sandbox

    keys = {k: creds[k] for k in ("consumer_key", "consumer_secret", "access_token", "access_token_secret")}
    client = tweepy.Client(**{**keys, **override})
    mount_sandbox(client.session, LoopbackAdapter(sandbox.port), ("api.twitter.com", "api.x.com"))
    return client


def _x_upload(http: requests.Session, creds: dict[str, str], data: bytes) -> str:
    auth = OAuth1(creds["consumer_key"], creds["consumer_secret"], creds["access_token"], creds["access_token_secret"])
    response = http.post(
        "https://api.x.com/2/media/upload",
        files={"media": ("i", data, "image/jpeg")},
        data={"media_category": "tweet_image"},
        auth=auth,
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["id"])


def test_x_refuses_281_weighted_characters_and_a_fifth_image(sandbox: Sandbox, http: requests.Session) -> None:
    creds = sandbox.provision_account("x", "limits")
    client = _x_client(sandbox, creds)
    client.create_tweet(text="界" * 140, user_auth=True)  # CJK weighs 2: exactly 280
    with pytest.raises(tweepy.Forbidden, match="too long"):
        client.create_tweet(text="界" * 140 + "a", user_auth=True)
    ids = [_x_upload(http, creds, jpeg()) for _ in range(5)]
    with pytest.raises(tweepy.BadRequest, match="maximum item count: 4"):
        client.create_tweet(text="five", media_ids=ids, user_auth=True)
    client.create_tweet(text="four", media_ids=ids[:4], user_auth=True)
    assert sandbox.created_count("x", creds["account_id"]) == 2


def test_x_refuses_a_bad_signature_unknown_token_and_no_auth(sandbox: Sandbox, http: requests.Session) -> None:
    creds = sandbox.provision_account("x", "auth")
    with pytest.raises(tweepy.Unauthorized):
        _x_client(sandbox, creds, consumer_secret="not-the-secret").create_tweet(text="a", user_auth=True)
    with pytest.raises(tweepy.Unauthorized):
        _x_client(sandbox, creds, access_token="1-unknown").create_tweet(text="a", user_auth=True)
    assert http.post("https://api.x.com/2/tweets", json={"text": "a"}, timeout=5).status_code == 401
    assert sandbox.created_count("x", creds["account_id"]) == 0


def _graph(sandbox: Sandbox, token: str, version: str = "v26.0") -> facebook.GraphAPI:
    from publisher.connectors.loopback import LoopbackAdapter, mount_sandbox

    session = requests.Session()
    mount_sandbox(session, LoopbackAdapter(sandbox.port), ("graph.facebook.com",))
    graph = facebook.GraphAPI(access_token=token, session=session, timeout=5)
    graph.version = version
    return graph


def test_graph_refuses_a_wrong_token_another_page_and_a_dead_version(sandbox: Sandbox) -> None:
    page = sandbox.provision_account("facebook", "page")
    other = sandbox.provision_account("facebook", "other")
    with pytest.raises(facebook.GraphAPIError) as wrong:
        _graph(sandbox, "EAAGnot-a-token").put_object(page["page_id"], "feed", message="a")
    assert wrong.value.code == 190
    with pytest.raises(facebook.GraphAPIError) as foreign:
        _graph(sandbox, other["access_token"]).put_object(page["page_id"], "feed", message="a")
    assert foreign.value.code == 200
    with pytest.raises(facebook.GraphAPIError) as dead:
        _graph(sandbox, page["access_token"], "v2.8").put_object(page["page_id"], "feed", message="a")
    assert dead.value.code == 2635
    with pytest.raises(facebook.GraphAPIError) as missing:
        _graph(sandbox, page["access_token"]).delete_object(f"{page['page_id']}_1")
    assert (missing.value.code, missing.value.result["error"]["error_subcode"]) == (100, 33)
    assert sandbox.created_count("facebook", page["account_id"]) == 0


def _ig_headers(creds: dict[str, str], upload_id: str) -> dict[str, str]:
    auth = json.loads(creds["session"])["authorization_data"]
    bearer = base64.b64encode(json.dumps(auth).encode()).decode()
    return {
        "Authorization": f"Bearer IGT:2:{bearer}",
        "X-Instagram-Rupload-Params": json.dumps({"upload_id": upload_id, "media_type": "1"}),
    }


def _ig_configure(
    http: requests.Session, creds: dict[str, str], path: str, body: dict[str, object]
) -> requests.Response:
    headers = {"Authorization": _ig_headers(creds, "0")["Authorization"]}
    form = {"signed_body": "SIGNATURE." + json.dumps(body)}
    return http.post(f"https://i.instagram.com/api/v1/media/{path}/", data=form, headers=headers, timeout=5)


def test_instagram_refuses_png_bad_shapes_bad_albums_and_no_session(sandbox: Sandbox, http: requests.Session) -> None:
    creds = sandbox.provision_account("instagram", "ig")
    url = "https://i.instagram.com/rupload_igphoto/{}_0_1"
    png = http.post(url.format(1), data=jpeg(fmt="PNG"), headers=_ig_headers(creds, "1"), timeout=5)
    assert png.status_code == 400
    for upload_id, (w, h) in {"2": (600, 900), "3": (600, 600), "4": (600, 600)}.items():
        ok = http.post(url.format(upload_id), data=jpeg(w, h), headers=_ig_headers(creds, upload_id), timeout=5)
        assert ok.status_code == 200
    tall = _ig_configure(http, creds, "configure", {"upload_id": "2", "caption": "tall"})
    assert tall.status_code == 400
    assert tall.json()["status"] == "fail"
    one = _ig_configure(http, creds, "configure_sidecar", {"caption": "one", "children_metadata": [{"upload_id": "3"}]})
    assert one.status_code == 400
    long = _ig_configure(http, creds, "configure", {"upload_id": "3", "caption": "a" * 2201})
    assert long.status_code == 400
    anonymous = http.post(
        url.format(9), data=jpeg(), timeout=5, headers={"X-Instagram-Rupload-Params": json.dumps({"upload_id": "9"})}
    )
    assert anonymous.status_code == 403
    assert anonymous.json()["message"] == "login_required"
    assert sandbox.created_count("instagram", creds["account_id"]) == 0
    good = _ig_configure(
        http,
        creds,
        "configure_sidecar",
        {"caption": "two", "children_metadata": [{"upload_id": "3"}, {"upload_id": "4"}]},
    )
    assert good.status_code == 200
    assert good.json()["media"]["media_type"] == 8
