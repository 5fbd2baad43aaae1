"""The log's signing key: Ed25519, kept in the vault, never in the database or the config.

The config pins the matching verifier key (C2SP vkey), so anyone can verify checkpoints and
proofs with the config alone.
"""

from __future__ import annotations

import base64
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from publisher.errors import LedgerError
from publisher.ledger.note import NoteSigner, NoteVerifier

LOG_KEY_SECRET = "log/signing-key"  # noqa: S105 - a vault entry name, not a secret


class SecretStore(Protocol):
    def has(self, name: str) -> bool: ...
    def get(self, name: str) -> bytes: ...
    def set(self, name: str, value: bytes) -> None: ...


def ensure_log_key(vault: SecretStore, origin: str) -> str:
    """Create the log key in the vault if it is not there; return its public vkey."""
    if not vault.has(LOG_KEY_SECRET):
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        vault.set(LOG_KEY_SECRET, base64.b64encode(raw))
    return log_signer(vault, origin).verifier.vkey


def log_signer(vault: SecretStore, origin: str) -> NoteSigner:
    raw = base64.b64decode(vault.get(LOG_KEY_SECRET))
    if len(raw) != 32:
        raise LedgerError(f"Vault entry {LOG_KEY_SECRET} is not an Ed25519 key: restore it from backup")
    return NoteSigner(origin, Ed25519PrivateKey.from_private_bytes(raw))


def log_verifier(vkey: str) -> NoteVerifier:
    try:
        return NoteVerifier.from_vkey(vkey)
    except (ValueError, LedgerError) as exc:
        raise LedgerError(f"log.vkey in the config is not a valid verifier key ({exc}): run 'publisher init'") from None
