"""The encrypted credential vault: one JSON file of sealed entries, each bound to its name.

File format (``var/vault.json``, mode 0600, replaced atomically on every change)::

    {"format": "trust-publisher-vault", "version": 1,
     "entries": {"x/stmarys": {"key_id": "<16 hex>", "nonce": "<base64>", "ciphertext": "<base64>"}}}

``key_id`` is the fingerprint of the master key that sealed the entry (see
:mod:`publisher.secrets.keys`), so during a rotation the file may hold entries under the old and
the new key and each is opened with the key it names. Names are not secret; values are, and no
value (nor a master key) ever reaches a log record, an exception or a repr.

Writers serialise on an ``flock`` of ``vault.json.lock``; readers need no lock because the file
is only ever replaced whole.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from publisher.errors import InvalidInput, NotFound, SecretError, SecretUnreadable
from publisher.secrets import _files
from publisher.secrets.keys import DecryptionFailed, MasterKey, load_master_key, load_pending_key

__all__ = ["MAX_NAME_LENGTH", "NAME_PATTERN", "Vault", "validate_name"]

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*")
MAX_NAME_LENGTH = 100

_FORMAT = "trust-publisher-vault"
_VERSION = 1
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_NOT_FOUND_HINT = "set it with 'publisher secrets set NAME'"

logger = logging.getLogger(__name__)

KeyLoader = Callable[[], tuple[MasterKey, MasterKey | None]]


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid secret name, else raise ``InvalidInput``.

    The message does not repeat the name: a value pasted by mistake must not reach a log.
    """
    if isinstance(name, str) and len(name) <= MAX_NAME_LENGTH and NAME_PATTERN.fullmatch(name):
        return name
    raise InvalidInput(
        f"The secret name given is not valid: use up to {MAX_NAME_LENGTH} letters, digits,"
        " '-', '_' and '.', in parts separated by '/' (for example 'x/stmarys')"
    )


class Vault:
    """Credentials by name, encrypted at rest under the master key.

    New values are sealed under the pending key while a rotation is under way, else under the
    master key. A vault made with :meth:`open` re-reads the keys before each write and when it
    meets an entry under a key it does not hold, so a long-running process follows a rotation.
    Safe to share between threads and processes.
    """

    def __init__(self, path: Path, master: MasterKey, *, pending: MasterKey | None = None) -> None:
        self._path = Path(path)
        self._lock_path = self._path.with_name(self._path.name + ".lock")
        self._mutex = threading.RLock()
        self._lock_depth = 0
        self._loader: KeyLoader | None = None
        self._use_keys(master, pending)

    @classmethod
    def open(cls, path: Path, environ: Mapping[str, str], key_file: Path) -> Vault:
        """The vault at ``path`` with the master key found as :func:`load_master_key` says,
        plus the pending key of an unfinished rotation (``<key_file>.next``) if there is one.

        :raises MasterKeyMissing, MasterKeyInsecure, SecretError: see ``load_master_key``.
        """
        environ = dict(environ)

        def loader() -> tuple[MasterKey, MasterKey | None]:
            return load_master_key(environ, key_file), load_pending_key(key_file)

        master, pending = loader()
        vault = cls(path, master, pending=pending)
        vault._loader = loader
        return vault

    @property
    def path(self) -> Path:
        return self._path

    @property
    def sealing_key_id(self) -> str:
        """Fingerprint of the key new values are sealed under."""
        return self._sealing_key.key_id

    def set(self, name: str, value: bytes) -> None:
        """Store ``value`` under ``name``, replacing any earlier value.

        :raises InvalidInput: the name is not valid.
        """
        name = validate_name(name)
        if not isinstance(value, bytes):
            raise TypeError("a secret value must be bytes")
        with self.lock():
            self._refresh_keys()
            entries = self._read_entries()
            entries[name] = self._seal(name, value, self._sealing_key)
            self._write_entries(entries)
        logger.info("stored secret %s under key %s", name, self._sealing_key.key_id)

    def get(self, name: str) -> bytes:
        """The value stored under ``name``.

        :raises NotFound: no such secret.
        :raises SecretUnreadable: wrong master key, or the entry was altered or moved.
        """
        name = validate_name(name)
        entry = self._read_entries().get(name)
        if entry is None:
            raise NotFound("secret", name, hint=_NOT_FOUND_HINT)
        key_id, nonce, ciphertext = _parse_entry(name, entry)
        if key_id not in self._keys:
            self._refresh_keys()
        return self._open(name, key_id, nonce, ciphertext)

    def has(self, name: str) -> bool:
        return validate_name(name) in self._read_entries()

    def names(self) -> list[str]:
        """Every secret name, sorted. Reads no value."""
        return sorted(self._read_entries())

    def key_ids(self) -> dict[str, str]:
        """Name -> fingerprint of the key its entry is sealed under (for status and rotation)."""
        return {name: _entry_key_id(name, entry) for name, entry in sorted(self._read_entries().items())}

    def delete(self, name: str) -> None:
        """Remove ``name``. :raises NotFound: no such secret."""
        name = validate_name(name)
        with self.lock():
            entries = self._read_entries()
            if entries.pop(name, None) is None:
                raise NotFound("secret", name, hint=_NOT_FOUND_HINT)
            self._write_entries(entries)
        logger.info("deleted secret %s", name)

    def reseal(self, name: str, to: MasterKey) -> bool:
        """Re-encrypt one entry under ``to`` (one atomic file replace); False if it already was.

        The entry is opened with the key its ``key_id`` names, which this vault must hold.
        :raises NotFound, SecretUnreadable: as :meth:`get`.
        """
        name = validate_name(name)
        with self.lock():
            entries = self._read_entries()
            entry = entries.get(name)
            if entry is None:
                raise NotFound("secret", name, hint=_NOT_FOUND_HINT)
            key_id, nonce, ciphertext = _parse_entry(name, entry)
            if key_id == to.key_id:
                return False
            value = self._open(name, key_id, nonce, ciphertext)
            entries[name] = self._seal(name, value, to)
            self._write_entries(entries)
        logger.info("re-encrypted secret %s from key %s to key %s", name, key_id, to.key_id)
        return True

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the vault's writer lock: re-entrant within this object, but a second Vault
        object on the same file in the same thread would wait for it forever."""
        with self._mutex, contextlib.ExitStack() as stack:
            if self._lock_depth == 0:
                self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                stack.enter_context(_files.exclusive_lock(self._lock_path))
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1

    def __repr__(self) -> str:
        return f"Vault(path={str(self._path)!r}, sealing_key_id={self._sealing_key.key_id!r})"

    # -- keys -------------------------------------------------------------------------------

    def _use_keys(self, master: MasterKey, pending: MasterKey | None) -> None:
        keys = {master.key_id: master}
        if pending is not None:
            keys[pending.key_id] = pending
        self._keys = keys
        self._sealing_key = pending if pending is not None else master

    def _refresh_keys(self) -> None:
        if self._loader is not None:
            with self._mutex:
                self._use_keys(*self._loader())

    def _seal(self, name: str, value: bytes, key: MasterKey) -> dict[str, str]:
        nonce, ciphertext = key.seal(name, value)
        return {
            "key_id": key.key_id,
            "nonce": base64.b64encode(nonce).decode("ascii"),
            "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
        }

    def _open(self, name: str, key_id: str, nonce: bytes, ciphertext: bytes) -> bytes:
        key = self._keys.get(key_id)
        if key is None:
            held = " or ".join(sorted(self._keys))
            raise SecretUnreadable(name, f"it is sealed under master key id {key_id}, this process has {held}")
        try:
            return key.open(name, nonce, ciphertext)
        except DecryptionFailed:
            raise SecretUnreadable(name, "the entry was altered or moved from another name") from None

    # -- file -------------------------------------------------------------------------------

    def _read_entries(self) -> dict[str, object]:
        try:
            data = self._path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(data, object_pairs_hook=_reject_duplicates)
        except ValueError:
            raise self._damaged("it is not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise self._damaged("it is not a trust-publisher vault")
        if doc.get("version") != _VERSION:
            raise self._damaged(f"unsupported vault version {doc.get('version')!r}")
        entries = doc.get("entries")
        if not isinstance(entries, dict):
            raise self._damaged("it has no entries table")
        return dict(entries)

    def _write_entries(self, entries: Mapping[str, object]) -> None:
        doc = {"format": _FORMAT, "version": _VERSION, "entries": dict(sorted(entries.items()))}
        _files.write_atomic(self._path, json.dumps(doc, indent=2).encode("utf-8") + b"\n")

    def _damaged(self, what: str) -> SecretError:
        return SecretError(f"The vault file {self._path} is damaged ({what}): restore it from a backup")


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key")
        result[key] = value
    return result


def _entry_key_id(name: str, entry: object) -> str:
    if isinstance(entry, dict):
        key_id = entry.get("key_id")
        if isinstance(key_id, str) and _KEY_ID.fullmatch(key_id):
            return key_id
    raise SecretUnreadable(name, "the entry is malformed")


def _parse_entry(name: str, entry: object) -> tuple[str, bytes, bytes]:
    key_id = _entry_key_id(name, entry)
    fields = entry if isinstance(entry, dict) else {}
    nonce, ciphertext = fields.get("nonce"), fields.get("ciphertext")
    if not isinstance(nonce, str) or not isinstance(ciphertext, str):
        raise SecretUnreadable(name, "the entry is malformed")
    try:
        return key_id, base64.b64decode(nonce, validate=True), base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError):
        raise SecretUnreadable(name, "the entry is malformed") from None
