"""Every gate rule, tried from the side that matters: a post that must NOT publish, and why."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from publisher.domain import approval as ap
from publisher.domain import gate
from publisher.domain.limits import Platform
from publisher.domain.model import ConsentAction, ConsentEvent, Featured, PolicySettings, Scope

from .world import DUE, T0, World, jpeg


@pytest.fixture
def w() -> World:
    return World()


@pytest.mark.parametrize("account", ["stmarys-x", "stmarys-facebook", "stmarys-instagram"])
def test_a_fully_approved_consented_post_passes(w: World, account: str) -> None:
    assert w.codes(account) == set()


def test_no_rules_fails_closed(w: World) -> None:
    findings = gate.evaluate(w.inputs(), rules=())
    assert [f.code for f in findings] == ["NO_RULES"]
    assert findings[0].blocking


def test_missing_approval(w: World) -> None:
    w.token = None
    assert "APPROVAL_MISSING" in w.codes()


def test_garbage_token(w: World) -> None:
    w.token = "v4.public.AAAA.BBBB"
    assert "APPROVAL_SIGNATURE_INVALID" in w.codes()


def test_token_signed_by_another_key_with_the_approvers_key_id(w: World) -> None:
    w.token = w.sign(key=Ed25519PrivateKey.generate())
    assert w.codes() == {"APPROVAL_SIGNATURE_INVALID"}


def test_token_with_a_flipped_signature_byte(w: World) -> None:
    head, body = w.token.rsplit(".", 1)[0].rsplit(".", 1)
    flipped = body[:-5] + ("A" if body[-5] != "A" else "B") + body[-4:]
    w.token = f"{head}.{flipped}.{w.token.rsplit('.', 1)[1]}"
    assert "APPROVAL_SIGNATURE_INVALID" in w.codes()


def test_text_edited_after_approval(w: World) -> None:
    w.post = dataclasses.replace(w.post, text=w.post.text + " ")
    assert w.codes() == {"APPROVAL_CONTENT_MISMATCH"}


def test_media_byte_changed_after_approval(w: World) -> None:
    w.post = dataclasses.replace(w.post, media=(jpeg(sha="b" + "a" * 63),))
    assert w.codes() == {"APPROVAL_CONTENT_MISMATCH"}


def test_token_for_another_post(w: World) -> None:
    w.token = w.sign(post_id="P-2")
    assert "APPROVAL_CONTENT_MISMATCH" in w.codes()


def test_account_not_in_the_approval(w: World) -> None:
    w.token = w.sign(accounts=("stmarys-facebook",))
    assert "APPROVAL_CONTENT_MISMATCH" in w.codes("stmarys-x")


def test_expired_token(w: World) -> None:
    w.token = w.sign(expires=DUE - timedelta(minutes=1))
    assert "APPROVAL_EXPIRED" in w.codes()


def test_outside_window_too_early_and_too_late(w: World) -> None:
    assert "OUTSIDE_APPROVED_WINDOW" in w.codes(now=DUE - timedelta(minutes=1))
    assert "OUTSIDE_APPROVED_WINDOW" in w.codes(now=DUE + timedelta(hours=12, seconds=1))


def test_window_is_judged_at_the_scheduled_time_when_screening(w: World) -> None:
    assert w.codes(now=T0, stage=gate.Stage.SCREEN) == set()


def test_approval_already_used_on_this_account(w: World) -> None:
    w.used = frozenset({("jti-1", "stmarys-x")})
    assert w.codes("stmarys-x") == {"APPROVAL_ALREADY_USED"}
    assert w.codes("stmarys-facebook") == set()


def test_approver_without_certificate(w: World) -> None:
    w.certs = []
    assert w.codes() == {"APPROVER_NOT_CERTIFIED"}


def test_certificate_signed_by_a_key_other_than_the_pinned_root(w: World) -> None:
    w.certs = [w.certify("Jane Head", w.approver_pub, {"stmarys"}, signer=Ed25519PrivateKey.generate())]
    assert w.codes() == {"APPROVER_NOT_CERTIFIED"}


def test_certificate_with_an_edited_body_is_ignored(w: World) -> None:
    signed = w.certs[0]
    w.certs = [ap.Signed(signed.body.replace(b"stmarys", b"stjohns"), signed.signature)]
    assert w.codes() == {"APPROVER_NOT_CERTIFIED"}


def test_no_pinned_root(w: World) -> None:
    w.root_pub = None  # type: ignore[assignment]
    assert "APPROVER_NOT_CERTIFIED" in w.codes()


def test_certificate_expired_before_posting(w: World) -> None:
    w.certs = [w.certify("Jane Head", w.approver_pub, {"stmarys"}, until=DUE - timedelta(days=1))]
    assert "APPROVER_NOT_CERTIFIED" in w.codes()


def test_approver_certified_for_another_school(w: World) -> None:
    w.certs = [w.certify("Jane Head", w.approver_pub, {"stjohns"})]
    assert w.codes() == {"APPROVER_NOT_AUTHORISED_FOR_SCHOOL"}


def test_revoked_approver(w: World) -> None:
    w.revocations = [ap.issue_revocation(w.root, w.kid, DUE - timedelta(hours=1), "left the Trust")]
    assert w.codes() == {"APPROVER_REVOKED"}


def test_revocation_not_signed_by_root_is_ignored(w: World) -> None:
    w.revocations = [ap.issue_revocation(Ed25519PrivateKey.generate(), w.kid, T0, "forged")]
    assert w.codes() == set()


def test_self_approval(w: World) -> None:
    w.post = dataclasses.replace(w.post, author="jane  HEAD")
    w.token = w.sign()
    assert w.codes() == {"SELF_APPROVAL"}


def test_consent_for_facebook_but_the_post_targets_x(w: World) -> None:
    w.consents = [w.grant("S-AMELIA", Platform.FACEBOOK, s) for s in Scope]
    assert w.codes("stmarys-facebook") == set()
    assert w.codes("stmarys-x") == {"CONSENT_MISSING", "NAME_WITHOUT_CONSENT"}


def test_consent_withdrawn_after_approval(w: World) -> None:
    w.consents.append(w.grant("S-AMELIA", Platform.X, Scope.IMAGE, DUE - timedelta(minutes=5), ConsentAction.WITHDRAW))
    assert w.codes("stmarys-x") == {"CONSENT_WITHDRAWN"}
    assert w.codes("stmarys-facebook") == set()


def test_consent_expired(w: World) -> None:
    w.consents = [
        ConsentEvent("S-AMELIA", p, s, ConsentAction.GRANT, T0, (DUE - timedelta(days=2)).date(), "f")
        for p in Platform
        for s in Scope
    ]
    assert w.codes() == {"CONSENT_EXPIRED", "NAME_WITHOUT_CONSENT"}


def test_consent_granted_again_after_withdrawal(w: World) -> None:
    w.consents.append(w.grant("S-AMELIA", Platform.X, Scope.IMAGE, T0 + timedelta(days=1), ConsentAction.WITHDRAW))
    w.consents.append(w.grant("S-AMELIA", Platform.X, Scope.IMAGE, T0 + timedelta(days=2)))
    assert w.codes() == set()


def test_never_publish_child_with_consent(w: World) -> None:
    w.subjects["S-AMELIA"] = dataclasses.replace(w.amelia, never_publish=True, never_publish_reason="court order")
    assert "SUBJECT_NEVER_PUBLISH" in w.codes()


def test_unknown_featured_subject(w: World) -> None:
    w.post = dataclasses.replace(w.post, featured=(Featured("S-NOBODY", frozenset({Scope.IMAGE})),))
    w.token = w.sign()
    assert "CONSENT_MISSING" in w.codes()


@pytest.mark.parametrize(
    "text",
    [
        "Well done Oliver!",
        "Oliver's painting",
        "OLIVER SMITH won",
        "Thanks to oliver\u2019s mum",
        "Well done Oliver  Smith",
    ],
)
def test_undeclared_child_named_in_text(w: World, text: str) -> None:
    w.post = dataclasses.replace(w.post, text=text)
    w.token = w.sign()
    findings = gate.evaluate(w.inputs())
    named = [f for f in findings if f.code == "NAME_WITHOUT_CONSENT"]
    assert named and named[0].subject_id == "S-OLIVER"
    assert "Oliver Smith" in named[0].message and "x" in named[0].message


@pytest.mark.parametrize("text", ["Olivers and Amelias", "Moliver", "olive oil"])
def test_names_are_matched_on_word_boundaries(w: World, text: str) -> None:
    w.post = dataclasses.replace(w.post, text=text)
    w.token = w.sign()
    assert "NAME_WITHOUT_CONSENT" not in w.codes()


def test_alias_counts_as_a_name(w: World) -> None:
    w.consents = [c for c in w.consents if c.scope is Scope.IMAGE]
    w.post = dataclasses.replace(w.post, text="Go Millie!", featured=(Featured("S-AMELIA", frozenset({Scope.IMAGE})),))
    w.token = w.sign()
    assert w.codes() == {"NAME_WITHOUT_CONSENT"}


def test_never_publish_child_named_in_text(w: World) -> None:
    w.subjects["S-OLIVER"] = dataclasses.replace(w.oliver, never_publish=True)
    w.post = dataclasses.replace(w.post, text="Oliver read to the class")
    w.token = w.sign()
    assert "SUBJECT_NEVER_PUBLISH" in w.codes()


def test_media_with_metadata(w: World) -> None:
    w.post = dataclasses.replace(w.post, media=(dataclasses.replace(jpeg(), metadata_clean=False),))
    w.token = w.sign()
    assert w.codes() == {"MEDIA_METADATA_PRESENT"}


def test_unknown_device_warns_by_default_and_blocks_when_configured(w: World) -> None:
    w.post = dataclasses.replace(w.post, media=(jpeg(device_known=False),))
    w.token = w.sign()
    findings = gate.evaluate(w.inputs())
    assert [f.severity for f in findings if f.code == "MEDIA_DEVICE_UNKNOWN"] == ["warning"]
    assert w.codes() == set()
    w.settings = PolicySettings(device_unknown_blocks=True)
    assert w.codes() == {"MEDIA_DEVICE_UNKNOWN"}


def test_photo_without_camera_data_is_flagged(w: World) -> None:
    w.post = dataclasses.replace(w.post, media=(jpeg(device_known=None),))
    w.token = w.sign()
    msgs = [f.message for f in gate.evaluate(w.inputs()) if f.code == "MEDIA_DEVICE_UNKNOWN"]
    assert msgs == ["Image 1 has no camera data"]


def test_x_text_over_280_weighted_characters(w: World) -> None:
    w.post = dataclasses.replace(w.post, text="Amelia " + "😀" * 137)  # 7 + 274 = 281 weighted
    w.token = w.sign()
    assert w.codes("stmarys-x") == {"PLATFORM_LIMIT"}
    assert w.codes("stmarys-facebook") == set()


def test_exactly_280_weighted_characters_passes(w: World) -> None:
    w.post = dataclasses.replace(w.post, text="Amelia" + "a" * 274)
    w.token = w.sign()
    assert w.codes("stmarys-x") == set()


def test_instagram_caption_over_2200(w: World) -> None:
    w.post = dataclasses.replace(w.post, text="Amelia " + "a" * 2200)
    w.token = w.sign()
    assert w.codes("stmarys-instagram") == {"PLATFORM_LIMIT"}
    assert "PLATFORM_LIMIT" in w.codes("stmarys-x")
    assert w.codes("stmarys-facebook") == set()


def test_facebook_text_limit(w: World) -> None:
    w.post = dataclasses.replace(w.post, text="Amelia " + "a" * 63_200)
    w.token = w.sign()
    assert w.codes("stmarys-facebook") == {"PLATFORM_LIMIT"}


def test_five_images_on_x(w: World) -> None:
    w.post = dataclasses.replace(w.post, media=tuple(jpeg(sha=str(i) * 64) for i in range(5)))
    w.token = w.sign()
    assert w.codes("stmarys-x") == {"PLATFORM_LIMIT"}
    assert w.codes("stmarys-facebook") == set()


def test_png_and_wrong_aspect_on_instagram(w: World) -> None:
    png = dataclasses.replace(jpeg(), mime="image/png")
    w.post = dataclasses.replace(w.post, media=(png, jpeg(sha="c" * 64, width=1000, height=2000)))
    w.token = w.sign()
    messages = [f.message for f in gate.blocking(gate.evaluate(w.inputs("stmarys-instagram")))]
    assert any("image/png" in m for m in messages)
    assert any("aspect" in m for m in messages)
    assert w.codes("stmarys-x") == set()


def test_instagram_needs_an_image(w: World) -> None:
    w.post = dataclasses.replace(w.post, media=())
    w.token = w.sign()
    assert w.codes("stmarys-instagram") == {"PLATFORM_LIMIT"}


def test_cancelled_post(w: World) -> None:
    w.post = dataclasses.replace(w.post, cancelled=True)
    assert w.codes() == {"POST_CANCELLED"}


def test_paused(w: World) -> None:
    w.settings = PolicySettings(paused=True)
    assert w.codes() == {"PUBLISHING_PAUSED"}


def test_unknown_account(w: World) -> None:
    assert "ACCOUNT_UNKNOWN" in w.codes("stjohns-x")


def test_findings_name_the_child_platform_and_rule(w: World) -> None:
    w.consents = []
    messages = [f.message for f in gate.evaluate(w.inputs("stmarys-facebook")) if f.code == "CONSENT_MISSING"]
    assert messages and all("Amelia Jones" in m and "facebook" in m for m in messages)


def test_instagram_hashtag_and_mention_limits(w: World) -> None:
    w.post = dataclasses.replace(w.post, text="Amelia " + " ".join(f"#tag{i}" for i in range(31)))
    w.token = w.sign()
    assert w.codes("stmarys-instagram") == {"PLATFORM_LIMIT"}
    w.post = dataclasses.replace(w.post, text="Amelia " + " ".join(f"#tag{i}" for i in range(30)))
    w.token = w.sign()
    assert w.codes("stmarys-instagram") == set()
    w.post = dataclasses.replace(w.post, text="Amelia " + " ".join(f"@friend{i}" for i in range(21)))
    w.token = w.sign()
    assert w.codes("stmarys-instagram") == {"PLATFORM_LIMIT"}
    assert w.codes("stmarys-facebook") == set()


def test_an_image_over_the_platforms_size_limit(w: World) -> None:
    big = dataclasses.replace(jpeg(), size=6 * 1024 * 1024)  # over X's 5 MB, under Facebook's and Instagram's
    w.post = dataclasses.replace(w.post, media=(big,))
    w.token = w.sign()
    assert w.codes("stmarys-x") == {"PLATFORM_LIMIT"}
    assert w.codes("stmarys-instagram") == set()


def test_an_account_of_another_school(w: World) -> None:
    w.accounts["stmarys-x"] = dataclasses.replace(w.accounts["stmarys-x"], school="stjohns")
    assert "ACCOUNT_UNKNOWN" in w.codes("stmarys-x")
