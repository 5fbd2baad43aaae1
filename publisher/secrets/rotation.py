"""Master key rotation that survives being killed at any instant.

The protocol (:func:`rotate`), all under the vault's writer lock:

1. Check every entry is sealed under the current key or an already pending one (a stray key
   stops the rotation before anything changes, naming the entry).
2. Unless a rotation is already pending, write the new key to ``<key file>.next`` (0600,
   atomic, never overwriting): from here on the new key is on disk before any entry uses it.
3. Re-encrypt the entries one at a time, each an atomic replace of the vault file. A vault
   opened with :meth:`Vault.open` holds both keys and opens each entry with the key it names,
   so every secret stays readable whatever the moment of interruption.
4. Finish, according to where the old key came from:

   * the key file: ``.next`` replaces the key file (an atomic rename). Done.
   * ``PUBLISHER_MASTER_KEY`` or a systemd credential: this process cannot change those, so
     the new key stays in ``.next`` and is returned (state ``STORE_NEW_KEY``) for the operator
     to store there. Until they do, the vault keeps working: it reads ``.next`` as the pending
     key. Once the variable or credential holds the new key, running rotate again finds nothing
     left to re-encrypt and deletes ``.next`` (state ``COMPLETE``). The old key is never lost
     before every entry is re-encrypted, and the new key never exists only in memory.

Running :func:`rotate` again after an interruption continues with the pending key and
completes the rotation.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable
from pathlib import Path

from publisher.errors import SecretError, SecretUnreadable
from publisher.secrets import _files
from publisher.secrets.keys import (
    KeySource,
    MasterKey,
    load_pending_key,
    pending_key_path,
    write_pending_key,
)
from publisher.secrets.vault import Vault

__all__ = ["ProgressHook", "RotationResult", "RotationState", "rotate"]

logger = logging.getLogger(__name__)

ProgressHook = Callable[[str, int, int], None]
"""Called after each entry is re-encrypted and on disk: (name, done, total)."""


class RotationState(enum.Enum):
    COMPLETE = "complete"
    """Every entry is under the new key, and the old key's place now holds the new one."""
    STORE_NEW_KEY = "store-new-key"
    """Every entry is under the new key; the operator must now put ``new_key`` into
    PUBLISHER_MASTER_KEY (or the systemd credential), then run rotate again to remove
    ``<key file>.next``."""


@dataclasses.dataclass(frozen=True)
class RotationResult:
    new_key: MasterKey
    resealed: int
    state: RotationState


def rotate(
    vault_path: Path,
    old: MasterKey,
    key_file: Path,
    *,
    new: MasterKey | None = None,
    on_progress: ProgressHook | None = None,
) -> RotationResult:
    """Re-encrypt the whole vault under a new master key (``new``, or a fresh random one).

    ``old`` is the current master key as :func:`load_master_key` returned it (its ``source``
    decides how the rotation finishes, see the module docstring); ``key_file`` is the configured
    key file path, beside which the pending key is kept even when ``old`` came from elsewhere.
    Idempotent: re-running after an interruption completes the rotation already under way.

    :raises SecretError: ``new`` differs from the key of a rotation already under way.
    :raises SecretUnreadable: an entry is under neither the current nor the pending key, or
        was altered (named); nothing further is changed.
    """
    vault = Vault(vault_path, old)
    with vault.lock():
        pending = load_pending_key(key_file)  # read under the lock: other rotations are excluded
        _check_all_known(vault, {old.key_id} | ({pending.key_id} if pending else set()))
        if pending is None:
            pending = write_pending_key(key_file, new if new is not None else MasterKey.generate())
            logger.info("rotation started: master key %s -> %s", old.key_id, pending.key_id)
        elif new is not None and new != pending:
            raise SecretError(
                f"A rotation to master key id {pending.key_id} is already under way:"
                " run 'publisher secrets rotate' without a new key to finish it first"
            )
        resealed = _reseal_all(vault, pending, on_progress)
        state = _finish(old, pending, key_file)
    logger.info("rotation to master key %s: %d entries re-encrypted, %s", pending.key_id, resealed, state.value)
    return RotationResult(pending, resealed, state)


def _check_all_known(vault: Vault, known: set[str]) -> None:
    for name, key_id in vault.key_ids().items():
        if key_id not in known:
            held = " or ".join(sorted(known))
            raise SecretUnreadable(name, f"it is sealed under master key id {key_id}, not {held}")


def _reseal_all(vault: Vault, to: MasterKey, on_progress: ProgressHook | None) -> int:
    todo = [name for name, key_id in vault.key_ids().items() if key_id != to.key_id]
    for done, name in enumerate(todo, start=1):
        vault.reseal(name, to)
        if on_progress is not None:
            on_progress(name, done, len(todo))
    return len(todo)


def _finish(old: MasterKey, pending: MasterKey, key_file: Path) -> RotationState:
    next_path = pending_key_path(key_file)
    if old.source is KeySource.KEY_FILE:
        _files.replace_durably(next_path, key_file)
        return RotationState.COMPLETE
    if old.source in (KeySource.ENV, KeySource.CREDENTIALS) and old == pending:
        # The operator's own store already holds the new key: the copy is no longer needed.
        _files.remove_durably(next_path)
        return RotationState.COMPLETE
    return RotationState.STORE_NEW_KEY
