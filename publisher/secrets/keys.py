"""The vault master key: where it comes from, and the authenticated encryption it performs.

A master key is 32 random bytes, written as URL-safe base64 text (44 characters). It is looked
for, in this order (:func:`load_master_key`):

1. the environment variable ``PUBLISHER_MASTER_KEY`` (an empty value counts as unset);
2. the key file (``publisher init`` creates it, mode 0600); refused if its group or other
   permission bits are set;
3. ``$CREDENTIALS_DIRECTORY/publisher-master-key`` (systemd ``LoadCredential=``); refused if
   other users may read it (systemd itself creates it private to the service).

During a rotation the next key waits in ``<key file>.next`` (:func:`pending_key_path`, same
permission rule), and the vault decrypts with whichever of the two keys an entry names.

This is the only module of the vault that imports ``cryptography.hazmat``. Each value is sealed
with AES-256-GCM under a key derived from the master key (HKDF-SHA256), with a fresh 96-bit
random nonce, and the associated data ``b"trust-publisher/vault/v1\\0" + key_id + b"\\0" + name``,
so a ciphertext opens only under its own name and its own key.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from publisher.errors import MasterKeyInsecure, MasterKeyMissing, SecretError
from publisher.secrets import _files

ENV_VAR = "PUBLISHER_MASTER_KEY"
CREDENTIAL_NAME = "publisher-master-key"
KEY_BYTES = 32
NONCE_BYTES = 12

_KEY_TEXT = re.compile(r"[A-Za-z0-9_-]{43}=?")
_MAX_KEY_FILE_BYTES = 1024
_AAD_PREFIX = b"trust-publisher/vault/v1\0"
_HKDF_INFO = b"trust-publisher/vault/v1 aes-256-gcm"
_KEY_ID_DOMAIN = b"trust-publisher/vault/key-id/v1\0"

__all__ = [
    "CREDENTIAL_NAME",
    "ENV_VAR",
    "DecryptionFailed",
    "KeySource",
    "MasterKey",
    "generate_key_file",
    "load_master_key",
    "load_pending_key",
    "pending_key_path",
    "write_pending_key",
]


class DecryptionFailed(Exception):
    """Internal: a sealed value did not open (wrong key, altered, or under another name).

    Carries no message; :class:`publisher.secrets.vault.Vault` turns it into ``SecretUnreadable``.
    """


class KeySource(enum.Enum):
    """Where a master key came from; decides whether rotation may replace it on disk."""

    ENV = "the environment variable PUBLISHER_MASTER_KEY"
    KEY_FILE = "the key file"
    CREDENTIALS = "the systemd credential publisher-master-key"
    PENDING = "the pending key file"
    GIVEN = "the caller"


class MasterKey:
    """32 secret bytes. Immutable; its repr shows only the public ``key_id`` fingerprint."""

    __slots__ = ("_aead", "_raw", "key_id", "source")

    def __init__(self, raw: bytes, source: KeySource = KeySource.GIVEN) -> None:
        if len(raw) != KEY_BYTES:
            raise SecretError(f"A vault master key must be {KEY_BYTES} bytes")
        self._raw = bytes(raw)
        self.source = source
        self.key_id = hashlib.sha256(_KEY_ID_DOMAIN + self._raw).hexdigest()[:16]
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(self._raw)
        self._aead = AESGCM(derived)

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(KEY_BYTES))

    @classmethod
    def from_text(cls, text: str, *, source: KeySource = KeySource.GIVEN, origin: str = "") -> MasterKey:
        """Parse the base64 form; the error names ``origin``, never the text."""
        candidate = text.strip()
        where = origin or source.value
        if not _KEY_TEXT.fullmatch(candidate):
            raise SecretError(
                f"{where} does not hold a valid vault master key (expected {KEY_BYTES} random bytes"
                " in URL-safe base64, 44 characters, as written by 'publisher init')"
            )
        padded = candidate if candidate.endswith("=") else candidate + "="
        try:
            raw = base64.urlsafe_b64decode(padded)
        except (binascii.Error, ValueError):
            raise SecretError(f"{where} does not hold a valid vault master key") from None
        return cls(raw, source)

    def to_text(self) -> str:
        """The base64 form, for the key file or for an operator to store. Handle as a secret."""
        return base64.urlsafe_b64encode(self._raw).decode("ascii")

    def with_source(self, source: KeySource) -> MasterKey:
        return MasterKey(self._raw, source)

    def seal(self, name: str, plaintext: bytes) -> tuple[bytes, bytes]:
        """Encrypt ``plaintext`` bound to ``name`` and this key: returns ``(nonce, ciphertext)``."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce, self._aead.encrypt(nonce, plaintext, self._aad(name))

    def open(self, name: str, nonce: bytes, ciphertext: bytes) -> bytes:
        """Decrypt what :meth:`seal` produced for ``name``.

        :raises DecryptionFailed: wrong key, altered bytes, or sealed under another name.
        """
        if len(nonce) != NONCE_BYTES:
            raise DecryptionFailed
        try:
            return self._aead.decrypt(nonce, ciphertext, self._aad(name))
        except InvalidTag:
            raise DecryptionFailed from None

    def _aad(self, name: str) -> bytes:
        return _AAD_PREFIX + self.key_id.encode("ascii") + b"\0" + name.encode("utf-8")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterKey):
            return NotImplemented
        return hmac.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r}, source={self.source.name})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a MasterKey is not pickled; store MasterKey.to_text() deliberately")


def pending_key_path(key_file: Path) -> Path:
    """Where the next master key waits while a rotation is under way."""
    return key_file.with_name(key_file.name + ".next")


def load_master_key(environ: Mapping[str, str], key_file: Path) -> MasterKey:
    """Find the master key: environment, then key file, then systemd credentials.

    :raises MasterKeyInsecure: the key file (or credential) may be read by other users.
    :raises SecretError: the key found is malformed (the message never contains it).
    :raises MasterKeyMissing: none of the three places holds a key.
    """
    from_env = environ.get(ENV_VAR, "")
    if from_env.strip():
        return MasterKey.from_text(from_env, source=KeySource.ENV, origin=ENV_VAR)
    key = _read_key_file(key_file, KeySource.KEY_FILE, forbidden=0o077)
    if key is not None:
        return key
    cred_dir = environ.get("CREDENTIALS_DIRECTORY", "")
    if cred_dir:
        key = _read_key_file(Path(cred_dir) / CREDENTIAL_NAME, KeySource.CREDENTIALS, forbidden=0o007)
        if key is not None:
            return key
    raise MasterKeyMissing(
        f"No vault master key: set {ENV_VAR}, create the key file {key_file} with 'publisher init',"
        f" or give the service the systemd credential '{CREDENTIAL_NAME}' (LoadCredential=)"
    )


def load_pending_key(key_file: Path) -> MasterKey | None:
    """The key an interrupted or unfinished rotation is moving the vault to, if any."""
    return _read_key_file(pending_key_path(key_file), KeySource.PENDING, forbidden=0o077)


def generate_key_file(path: Path) -> MasterKey:
    """Create a new key file (0600) holding a fresh random key; never overwrites one.

    :raises SecretError: the file already exists.
    """
    key = MasterKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        _files.create_exclusive(path, (key.to_text() + "\n").encode("ascii"))
    except FileExistsError:
        raise SecretError(f"Key file {path} already exists; refusing to overwrite a master key") from None
    return key.with_source(KeySource.KEY_FILE)


def write_pending_key(key_file: Path, key: MasterKey) -> MasterKey:
    """Store ``key`` as the pending key unless one is already pending; return the pending key.

    Atomic and exclusive: of two concurrent rotations, both continue with the same key.
    """
    path = pending_key_path(key_file)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        _files.create_exclusive(path, (key.to_text() + "\n").encode("ascii"))
    except FileExistsError:
        existing = load_pending_key(key_file)
        if existing is None:  # removed between our two calls: try once more
            return write_pending_key(key_file, key)
        return existing
    return key.with_source(KeySource.PENDING)


def _read_key_file(path: Path, source: KeySource, *, forbidden: int) -> MasterKey | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SecretError(f"Cannot open the master key file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"The master key file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & forbidden:
            raise MasterKeyInsecure(
                f"The master key file {path} can be read by other users (mode {mode:04o}):"
                f" run 'chmod 600 {path}', then rotate the key with 'publisher secrets rotate'"
            )
        data = os.read(fd, _MAX_KEY_FILE_BYTES)
    finally:
        os.close(fd)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    return MasterKey.from_text(text, source=source, origin=f"The key file {path}")
