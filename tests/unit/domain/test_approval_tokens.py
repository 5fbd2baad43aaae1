"""The approval envelope: exact bytes, no algorithm field, duplicate keys rejected."""

from __future__ import annotations

import base64
import json

import pyseto
import pytest
from cryptography.hazmat.primitives import serialization

from publisher.domain import approval as ap
from publisher.domain import canonical

from .world import World


def _resign(w: World, payload: bytes, footer: bytes | None = None) -> str:
    pem = w.approver.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = pyseto.Key.new(4, "public", pem)
    foot = footer if footer is not None else canonical.dumps({"kid": w.kid})
    return pyseto.encode(key, payload, footer=foot, implicit_assertion=ap.APPROVAL_IMPLICIT).decode()


def test_round_trip() -> None:
    w = World()
    claims = ap.verify_approval(w.token, w.approver_pub)
    assert claims == w.claims(accounts=tuple(sorted(w.post.accounts)))


def test_duplicate_keys_in_a_validly_signed_statement_are_rejected() -> None:
    w = World()
    body = canonical.dumps(ap.statement(w.claims())).decode()
    dup = body[:-1] + ',"post":"P-OTHER"}'
    token = _resign(w, dup.encode())
    with pytest.raises(ap.SignatureProblem, match="duplicate JSON key"):
        ap.verify_approval(token, w.approver_pub)


def test_floats_are_rejected() -> None:
    w = World()
    st = ap.statement(w.claims())
    st["exp"] = 1.5
    with pytest.raises(ap.SignatureProblem):
        ap.verify_approval(_resign(w, json.dumps(st).encode()), w.approver_pub)


def test_footer_key_id_must_match_the_statement() -> None:
    w = World()
    token = _resign(w, canonical.dumps(ap.statement(w.claims())), canonical.dumps({"kid": "0" * 16}))
    with pytest.raises(ap.SignatureProblem, match="key id"):
        ap.verify_approval(token, w.approver_pub)


def test_other_token_versions_are_refused() -> None:
    w = World()
    v2 = w.token.replace("v4.public.", "v2.public.", 1)
    with pytest.raises(ap.SignatureProblem):
        ap.verify_approval(v2, w.approver_pub)


def test_payload_tampering_is_detected() -> None:
    w = World()
    parts = w.token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4)))
    raw[10] ^= 1
    parts[2] = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(ap.SignatureProblem):
        ap.verify_approval(".".join(parts), w.approver_pub)


def test_canonical_reader_rejects_duplicates_and_floats() -> None:
    with pytest.raises(canonical.CanonicalError):
        canonical.loads('{"a":1,"a":2}')
    with pytest.raises(canonical.CanonicalError):
        canonical.loads('{"a":1.0}')
    with pytest.raises(canonical.CanonicalError):
        canonical.dumps({"a": 0.5})
