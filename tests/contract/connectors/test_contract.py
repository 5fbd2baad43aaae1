"""One contract suite for every connector, each driven through its emulator by the real library."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta

import pytest

from publisher.connectors import ConnectorSettings, PublishedRef, RenderedPost
from publisher.errors import AuthFailed, OutcomeUnknown, RateLimited, Rejected, Transient

from .conftest import CREATE_ENDPOINT, FAST, LOOKUP_ENDPOINT, Case, image, post_for


def test_publish_makes_the_post_live_with_the_exact_approved_bytes(case: Case) -> None:
    post = post_for(case.platform)
    ref = case.connector.publish(post)
    assert ref.platform == case.platform
    assert ref.platform_id
    assert ref.url.startswith("https://")
    live = case.live()
    assert [p["text"] for p in live] == [post.text]
    assert live[0]["media"] == [m.sha256 for m in post.media]
    assert case.connector.lookup(ref) == "live"


@pytest.mark.parametrize("count", [1, 4])
def test_publish_images_uploads_every_image_unchanged(case: Case, count: int) -> None:
    post = post_for(case.platform, images=count)
    case.connector.publish(post)
    (live,) = case.live()
    assert live["media"] == [hashlib.sha256(m.data).hexdigest() for m in post.media]
    assert case.created() == 1


def test_delete_removes_the_post_and_a_second_delete_is_fine(case: Case) -> None:
    ref = case.connector.publish(post_for(case.platform))
    case.connector.delete(ref)
    assert case.live() == []
    assert case.connector.lookup(ref) == "gone"
    case.connector.delete(ref)  # idempotent
    assert case.connector.lookup(ref) == "gone"


def test_find_recent_finds_a_published_post_and_nothing_for_an_unpublished_one(case: Case) -> None:
    post = post_for(case.platform, text="Harvest festival & <assembly> photos")
    ref = case.connector.publish(post)
    assert case.connector.find_recent(post) == ref
    assert case.connector.find_recent(post_for(case.platform)) is None


def test_find_recent_ignores_posts_already_recorded_and_posts_made_before_the_call(case: Case) -> None:
    post = post_for(case.platform, text="School closes at 1pm today")
    started = datetime.now(UTC)
    ref = case.connector.publish(post)
    assert case.connector.find_recent(post, since=started) == ref
    assert case.connector.find_recent(post, since=started, exclude={ref.platform_id}) is None
    assert case.connector.find_recent(post, since=started + timedelta(minutes=10)) is None


def test_find_recent_is_none_after_delete(case: Case) -> None:
    post = post_for(case.platform)
    case.connector.delete(case.connector.publish(post))
    assert case.connector.find_recent(post) is None


# --- faults ---------------------------------------------------------------------------------------


def test_rate_limit_gives_retry_after(case: Case) -> None:
    case.sandbox.inject(case.platform, CREATE_ENDPOINT[case.platform], "429", seconds=120)
    with pytest.raises(RateLimited) as caught:
        case.connector.publish(post_for(case.platform))
    assert caught.value.retry_after > 0
    assert case.created() == 0


def test_503_on_publish_is_transient_and_nothing_was_created(case: Case) -> None:
    case.sandbox.inject(case.platform, CREATE_ENDPOINT[case.platform], "503")
    with pytest.raises(Transient):
        case.connector.publish(post_for(case.platform))
    assert case.created() == 0


def test_500_on_publish_is_outcome_unknown_then_reconciles_to_absent(case: Case) -> None:
    post = post_for(case.platform)
    case.sandbox.inject(case.platform, CREATE_ENDPOINT[case.platform], "500")
    with pytest.raises(OutcomeUnknown):
        case.connector.publish(post)
    assert case.connector.find_recent(post) is None


@pytest.mark.parametrize("fault", ["500", "503"])
def test_5xx_on_lookup_and_delete_is_transient(case: Case, fault: str) -> None:
    ref = case.connector.publish(post_for(case.platform))
    case.sandbox.inject(case.platform, LOOKUP_ENDPOINT[case.platform], fault)
    with pytest.raises(Transient):
        case.connector.lookup(ref)
    case.sandbox.inject(case.platform, "delete", fault)
    with pytest.raises(Transient):
        case.connector.delete(ref)
    assert case.connector.lookup(ref) == "live"


def test_reset_before_response_on_publish_is_outcome_unknown(case: Case) -> None:
    post = post_for(case.platform)
    case.sandbox.inject(case.platform, CREATE_ENDPOINT[case.platform], "reset")
    with pytest.raises(OutcomeUnknown):
        case.connector.publish(post)
    assert case.created() == 0
    assert case.connector.find_recent(post) is None


def test_accepted_then_dropped_is_outcome_unknown_and_reconciles_to_the_post(case: Case) -> None:
    post = post_for(case.platform)
    case.sandbox.inject(case.platform, CREATE_ENDPOINT[case.platform], "accept_drop")
    with pytest.raises(OutcomeUnknown):
        case.connector.publish(post)
    assert case.created() == 1
    found = case.connector.find_recent(post)
    assert found is not None
    assert found.platform_id in {str(p["id"]) for p in case.live()}


def test_timeout_is_outcome_unknown_quickly(case: Case) -> None:
    connector = case.make(ConnectorSettings(timeout=0.5, instagram_pause=0.0, instagram_request_delay=0.0))
    connector.find_recent(post_for(case.platform))  # log in / warm up outside the timing
    case.sandbox.inject(case.platform, CREATE_ENDPOINT[case.platform], "timeout", seconds=2.0)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown):
        connector.publish(post_for(case.platform))
    assert time.monotonic() - started < 1.8


def test_find_recent_that_cannot_answer_raises_outcome_unknown(case: Case) -> None:
    endpoint = {"x": "user_tweets", "facebook": "list_feed", "instagram": "feed"}[case.platform]
    case.connector.find_recent(post_for(case.platform))  # log in first
    case.sandbox.inject(case.platform, endpoint, "500")
    with pytest.raises(OutcomeUnknown):
        case.connector.find_recent(post_for(case.platform))


def test_revoked_credentials_are_auth_failed_with_what_to_do(case: Case) -> None:
    case.sandbox.revoke(case.platform, case.account_id)
    with pytest.raises(AuthFailed) as caught:
        case.connector.publish(post_for(case.platform))
    assert "publisher secrets set" in str(caught.value)
    assert case.created() == 0


@pytest.mark.parametrize("platform", ["x", "facebook"])
def test_duplicate_content_is_rejected(sandbox: object, platform: str) -> None:
    from publisher.sandbox import Sandbox

    assert isinstance(sandbox, Sandbox)
    creds = sandbox.provision_account(platform, "dup")
    from publisher.connectors import make_connector

    connector = make_connector(platform, creds, settings=FAST, sandbox_port=sandbox.port)
    post = post_for(platform)
    connector.publish(post)
    with pytest.raises(Rejected, match=r"(?i)duplicate"):
        connector.publish(post)  # the emulator's own rule, as the platform
    sandbox.inject(platform, CREATE_ENDPOINT[platform], "duplicate")
    with pytest.raises(Rejected, match=r"(?i)duplicate"):
        connector.publish(post_for(platform))
    assert sandbox.created_count(platform, creds["account_id"]) == 1


def test_instagram_challenge_is_auth_failed_and_never_prompts(sandbox: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from publisher.connectors import make_connector
    from publisher.sandbox import Sandbox

    assert isinstance(sandbox, Sandbox)

    def no_input(*_args: object) -> str:
        raise AssertionError("instagrapi asked for input()")

    monkeypatch.setattr("builtins.input", no_input)
    creds = sandbox.provision_account("instagram", "challenged")
    for endpoint in ("current_user", "configure"):
        connector = make_connector("instagram", creds, settings=FAST, sandbox_port=sandbox.port)
        sandbox.inject("instagram", endpoint, "challenge")
        with pytest.raises(AuthFailed, match="security check"):
            connector.publish(post_for("instagram"))
    assert sandbox.created_count("instagram", creds["account_id"]) == 0


@pytest.mark.parametrize(("fault", "error"), [("500", Transient), ("503", Transient), ("429", RateLimited)])
def test_instagram_session_check_failing_on_the_platforms_side_is_not_the_accounts_fault(
    sandbox: object, fault: str, error: type[Exception]
) -> None:
    from publisher.connectors import make_connector
    from publisher.sandbox import Sandbox

    assert isinstance(sandbox, Sandbox)
    creds = sandbox.provision_account("instagram", f"busy-{fault}")
    connector = make_connector("instagram", creds, settings=FAST, sandbox_port=sandbox.port)
    sandbox.inject("instagram", "current_user", fault)
    with pytest.raises(error):
        connector.publish(post_for("instagram"))
    assert sandbox.created_count("instagram", creds["account_id"]) == 0
    connector.publish(post_for("instagram"))  # and the next attempt goes through
    assert sandbox.created_count("instagram", creds["account_id"]) == 1


def test_instagram_accounts_uploading_in_the_same_millisecond_do_not_share_an_upload(
    sandbox: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two accounts (two daemon processes, say) upload under the same millisecond id, then both
    configure: Instagram keeps upload ids per account, and so does its emulator."""
    import threading

    from publisher.connectors import instagram, make_connector
    from publisher.sandbox import Sandbox

    assert isinstance(sandbox, Sandbox)
    same = str(int(time.time() * 1000))
    monkeypatch.setattr(instagram, "new_upload_id", lambda: same)
    both_uploaded = threading.Barrier(2, timeout=10)
    real_rupload = instagram.InstagramConnector._rupload

    def rupload_then_wait(self: object, *args: object) -> tuple[str, int, int]:
        uploaded = real_rupload(self, *args)  # type: ignore[arg-type]
        both_uploaded.wait()
        return uploaded

    monkeypatch.setattr(instagram.InstagramConnector, "_rupload", rupload_then_wait)
    accounts = [sandbox.provision_account("instagram", f"same-ms-{i}") for i in range(2)]
    errors: list[Exception] = []

    def publish(creds: dict[str, str]) -> None:
        try:
            make_connector("instagram", creds, settings=FAST, sandbox_port=sandbox.port).publish(post_for("instagram"))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(c,)) for c in accounts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert [sandbox.created_count("instagram", c["account_id"]) for c in accounts] == [1, 1]


def test_instagram_upload_ids_never_repeat_within_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """One account's album uploads in one millisecond (and a daemon's threads) need distinct ids."""
    import threading

    from publisher.connectors import instagram

    monkeypatch.setattr(instagram.time, "time", lambda: 1_790_000_000.0)
    seen: list[str] = []

    def take() -> None:
        seen.extend(instagram.new_upload_id() for _ in range(500))

    threads = [threading.Thread(target=take) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1000
    assert all(int(i) >= 1_790_000_000_000 for i in seen)  # still millisecond timestamps, as instagrapi's


# --- what the platforms refuse ----------------------------------------------------------------------

TOO_LONG = {"x": "é" * 281, "facebook": "a" * 63_207, "instagram": "a" * 2_201}


def test_text_over_the_platform_limit_is_refused_by_the_platform(case: Case) -> None:
    with pytest.raises(Rejected):
        case.connector.publish(post_for(case.platform, text=TOO_LONG[case.platform]))
    assert case.created() == 0
    endpoints = [r["endpoint"] for r in case.sandbox.request_log() if r["platform"] == case.platform]
    assert CREATE_ENDPOINT[case.platform] in endpoints


def test_x_weighted_length_counts_urls_as_23(sandbox: object) -> None:
    from publisher.connectors import make_connector
    from publisher.sandbox import Sandbox

    assert isinstance(sandbox, Sandbox)
    creds = sandbox.provision_account("x", "urls")
    connector = make_connector("x", creds, settings=FAST, sandbox_port=sandbox.port)
    url = "https://example.org/" + "a" * 200
    connector.publish(RenderedPost("b" * 256 + " " + url, (), "m"))  # 256 + 1 + 23 = 280
    with pytest.raises(Rejected, match="too long"):
        connector.publish(RenderedPost("c" * 257 + " " + url, (), "m2"))


def test_too_many_images_wrong_type_or_shape_is_rejected_before_upload(case: Case) -> None:
    before = len(case.sandbox.request_log())
    limit = case.connector.limits.max_images
    too_many = RenderedPost("x", tuple(image(colour=i) for i in range(limit + 1)), "m")
    with pytest.raises(Rejected, match="at most"):
        case.connector.publish(too_many)
    tampered = image()
    tampered = type(tampered)(tampered.data + b"\0", tampered.mime, tampered.sha256, 640, 640)
    with pytest.raises(Rejected, match="approved"):
        case.connector.publish(RenderedPost("x", (tampered,), "m"))
    assert case.sandbox.request_log()[before:] == []  # nothing was sent
    assert case.created() == 0


def test_instagram_refuses_png_and_odd_shapes_without_converting(sandbox: object) -> None:
    from publisher.connectors import make_connector
    from publisher.sandbox import Sandbox

    assert isinstance(sandbox, Sandbox)
    creds = sandbox.provision_account("instagram", "shapes")
    connector = make_connector("instagram", creds, settings=FAST, sandbox_port=sandbox.port)
    with pytest.raises(Rejected, match="image/png"):
        connector.publish(RenderedPost("png", (image(fmt="PNG"),), "m"))
    with pytest.raises(Rejected, match="4:5"):
        connector.publish(RenderedPost("tall", (image(400, 800),), "m"))
    with pytest.raises(Rejected, match=r"1\.91:1"):
        connector.publish(RenderedPost("wide", (image(1000, 400),), "m"))
    with pytest.raises(Rejected, match="at least one image"):
        connector.publish(RenderedPost("text only", (), "m"))
    connector.publish(RenderedPost("4:5 is fine", (image(800, 1000),), "m"))
    assert sandbox.created_count("instagram", creds["account_id"]) == 1


# --- transport hygiene -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v25.0", "v26.0"])
def test_graph_requests_use_the_configured_version(sandbox: object, version: str) -> None:
    from publisher.connectors import make_connector
    from publisher.sandbox import Sandbox

    assert isinstance(sandbox, Sandbox)
    creds = sandbox.provision_account("facebook", f"version {version}")
    settings = ConnectorSettings(timeout=5.0, graph_version=version)
    connector = make_connector("facebook", creds, settings=settings, sandbox_port=sandbox.port)
    before = len(sandbox.request_log())
    ref = connector.publish(post_for("facebook", images=2))
    connector.delete(ref)
    paths = [r["path"] for r in sandbox.request_log()[before:] if r["platform"] == "facebook"]
    assert len(paths) >= 5
    assert all(p.startswith(f"/{version}/") for p in paths), paths


def test_every_request_the_libraries_make_has_a_timeout(case: Case) -> None:
    post = post_for(case.platform, images=2)
    ref = case.connector.publish(post)
    case.connector.find_recent(post)
    case.connector.delete(ref)
    adapter = getattr(case.connector, "sandbox_adapter", None)
    assert adapter is not None
    assert len(adapter.sent) >= 4
    assert all(timeout is not None for _method, _url, timeout in adapter.sent), adapter.sent


def test_published_ref_is_plain_data(case: Case) -> None:
    ref = case.connector.publish(post_for(case.platform))
    assert ref == PublishedRef(ref.platform, ref.platform_id, ref.url)


def test_latency_below_the_timeout_is_just_slow(case: Case) -> None:
    case.sandbox.inject(case.platform, CREATE_ENDPOINT[case.platform], "latency", seconds=0.3)
    started = time.monotonic()
    ref = case.connector.publish(post_for(case.platform))
    assert time.monotonic() - started >= 0.3
    assert case.connector.lookup(ref) == "live"
