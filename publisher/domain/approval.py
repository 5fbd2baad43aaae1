"""Approver certificates, revocations and approval tokens: exact bytes, Ed25519, pinned root.

- A certificate or revocation is canonical JSON bytes plus an Ed25519 signature by the
  Trust root over a context string and those bytes. Anything not signed by the pinned root
  is ignored and reported.
- An approval is a versioned approval statement (canonical JSON claims) carried in a PASETO
  v4.public token (no algorithm field; the signature covers the exact payload bytes; the
  footer names the key id). The statement is kept separate from the envelope so a passkey
  signature over the same statement can be accepted later.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyseto
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from publisher.domain import canonical
from publisher.domain.model import ApprovalClaims, Certificate, Revocation, Role

CERT_CONTEXT = b"trust-publisher/approver-certificate/v1\0"
REVOCATION_CONTEXT = b"trust-publisher/approver-revocation/v1\0"
APPROVAL_TYPE = "trust-publisher/approval"
APPROVAL_IMPLICIT = b"trust-publisher/approval/v1"


class SignatureProblem(ValueError):
    """A signed object that does not verify or does not parse; the message says which."""


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(b"trust-publisher/key\0" + public_key).hexdigest()[:16]


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise SignatureProblem("not valid base64") from None


def _ts(value: datetime) -> int:
    return int(value.astimezone(UTC).timestamp())


def _dt(value: Any, what: str) -> datetime:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SignatureProblem(f"{what} must be an integer time")
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class Signed:
    """Exact body bytes and the root's signature over context || body."""

    body: bytes
    signature: bytes


def _sign(root: Ed25519PrivateKey, context: bytes, body: dict[str, Any]) -> Signed:
    data = canonical.dumps(body)
    return Signed(data, root.sign(context + data))


def _verify(root_public: bytes, context: bytes, signed: Signed, typ: str) -> dict[str, Any]:
    try:
        Ed25519PublicKey.from_public_bytes(root_public).verify(signed.signature, context + signed.body)
    except (InvalidSignature, ValueError):
        raise SignatureProblem("not signed by the pinned Trust root key") from None
    try:
        body = canonical.loads(signed.body)
    except canonical.CanonicalError as exc:
        raise SignatureProblem(f"malformed body: {exc}") from None
    if not isinstance(body, dict) or body.get("typ") != typ or body.get("v") != 1:
        raise SignatureProblem(f"not a {typ} v1")
    return body


def issue_certificate(
    root: Ed25519PrivateKey,
    approver_public: bytes,
    name: str,
    role: Role,
    schools: frozenset[str],
    valid_from: datetime,
    valid_until: datetime,
    serial: str,
) -> Signed:
    return _sign(
        root,
        CERT_CONTEXT,
        {
            "v": 1,
            "typ": "approver-certificate",
            "key_id": key_id(approver_public),
            "public_key": b64(approver_public),
            "name": name,
            "role": role.value,
            "schools": sorted(schools),
            "valid_from": _ts(valid_from),
            "valid_until": _ts(valid_until),
            "serial": serial,
        },
    )


@functools.lru_cache(maxsize=4096)  # a pure function of the bytes: the gate asks it for every delivery
def verify_certificate(root_public: bytes, signed: Signed) -> Certificate:
    body = _verify(root_public, CERT_CONTEXT, signed, "approver-certificate")
    try:
        public_key = unb64(body["public_key"])
        if key_id(public_key) != body["key_id"]:
            raise SignatureProblem("key id does not match the public key")
        return Certificate(
            key_id=body["key_id"],
            public_key=public_key,
            name=str(body["name"]),
            role=Role(body["role"]),
            schools=frozenset(str(s) for s in body["schools"]),
            valid_from=_dt(body["valid_from"], "valid_from"),
            valid_until=_dt(body["valid_until"], "valid_until"),
            serial=str(body["serial"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SignatureProblem):
            raise
        raise SignatureProblem(f"certificate field missing or wrong: {exc}") from None


def issue_revocation(root: Ed25519PrivateKey, kid: str, revoked_at: datetime, reason: str) -> Signed:
    return _sign(
        root,
        REVOCATION_CONTEXT,
        {
            "v": 1,
            "typ": "approver-revocation",
            "key_id": kid,
            "revoked_at": _ts(revoked_at),
            "reason": reason,
        },
    )


@functools.lru_cache(maxsize=4096)  # as verify_certificate
def verify_revocation(root_public: bytes, signed: Signed) -> Revocation:
    body = _verify(root_public, REVOCATION_CONTEXT, signed, "approver-revocation")
    try:
        return Revocation(str(body["key_id"]), _dt(body["revoked_at"], "revoked_at"), str(body["reason"]))
    except KeyError as exc:
        raise SignatureProblem(f"revocation field missing: {exc}") from None


def _pem_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@functools.lru_cache(maxsize=256)
def _paseto_key(public_key: bytes) -> Any:
    return pyseto.Key.new(version=4, purpose="public", key=_pem_public(public_key))


def _pem_public(public_key: bytes) -> bytes:
    return Ed25519PublicKey.from_public_bytes(public_key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def statement(claims: ApprovalClaims) -> dict[str, Any]:
    return {
        "v": 1,
        "typ": APPROVAL_TYPE,
        "post": claims.post_id,
        "school": claims.school,
        "manifest_sha256": claims.manifest_sha256,
        "accounts": sorted(claims.accounts),
        "nbf": _ts(claims.not_before),
        "naf": _ts(claims.not_after),
        "exp": _ts(claims.expires),
        "iat": _ts(claims.issued_at),
        "jti": claims.jti,
        "kid": claims.key_id,
    }


def sign_approval(approver: Ed25519PrivateKey, claims: ApprovalClaims) -> str:
    """A PASETO v4.public token over the canonical approval statement."""
    key = pyseto.Key.new(version=4, purpose="public", key=_pem_private(approver))
    token = pyseto.encode(
        key,
        canonical.dumps(statement(claims)),
        footer=canonical.dumps({"kid": claims.key_id}),
        implicit_assertion=APPROVAL_IMPLICIT,
    )
    return token.decode("ascii")


def token_key_id(token: str) -> str:
    """The key id in the token's footer (unauthenticated until the signature is checked)."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != "v4" or parts[1] != "public":
        raise SignatureProblem("not a v4.public approval token")
    try:
        footer = canonical.loads(base64.urlsafe_b64decode(parts[3] + "=" * (-len(parts[3]) % 4)))
    except (ValueError, canonical.CanonicalError):
        raise SignatureProblem("malformed token footer") from None
    if not isinstance(footer, dict) or not isinstance(footer.get("kid"), str):
        raise SignatureProblem("token footer has no key id")
    return str(footer["kid"])


def verify_approval(token: str, approver_public: bytes) -> ApprovalClaims:
    """Check the signature over the exact payload bytes, then parse the claims strictly."""
    kid = token_key_id(token)
    key = _paseto_key(approver_public)
    try:
        decoded = pyseto.decode(key, token, implicit_assertion=APPROVAL_IMPLICIT)
    except Exception:  # pyseto raises several types for a bad token; all mean "does not verify"
        raise SignatureProblem("approval signature does not verify") from None
    payload = decoded.payload
    if not isinstance(payload, bytes):
        raise SignatureProblem("approval statement is not raw bytes")
    try:
        body = canonical.loads(payload)
    except canonical.CanonicalError as exc:
        raise SignatureProblem(f"approval statement malformed: {exc}") from None
    if not isinstance(body, dict) or body.get("typ") != APPROVAL_TYPE or body.get("v") != 1:
        raise SignatureProblem("not an approval statement v1")
    if body.get("kid") != kid:
        raise SignatureProblem("key id in the statement differs from the footer")
    try:
        return ApprovalClaims(
            post_id=str(body["post"]),
            school=str(body["school"]),
            manifest_sha256=str(body["manifest_sha256"]),
            accounts=tuple(str(a) for a in body["accounts"]),
            not_before=_dt(body["nbf"], "nbf"),
            not_after=_dt(body["naf"], "naf"),
            expires=_dt(body["exp"], "exp"),
            issued_at=_dt(body["iat"], "iat"),
            jti=str(body["jti"]),
            key_id=kid,
        )
    except KeyError as exc:
        raise SignatureProblem(f"approval statement lacks {exc}") from None
