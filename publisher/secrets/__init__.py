"""The encrypted credential vault, its master key, and crash-safe key rotation.

    from publisher.secrets import Vault, load_master_key, rotate

    vault = Vault.open(Path("var/vault.json"), os.environ, Path("var/master.key"))
    vault.set("x/stmarys", token_bytes)

See :mod:`publisher.secrets.keys` (where the master key comes from, the encryption),
:mod:`publisher.secrets.vault` (the file) and :mod:`publisher.secrets.rotation` (the protocol).
"""

from __future__ import annotations

from publisher.secrets.keys import (
    CREDENTIAL_NAME,
    ENV_VAR,
    KeySource,
    MasterKey,
    generate_key_file,
    load_master_key,
    load_pending_key,
    pending_key_path,
)
from publisher.secrets.rotation import RotationResult, RotationState, rotate
from publisher.secrets.vault import MAX_NAME_LENGTH, Vault, validate_name

__all__ = [
    "CREDENTIAL_NAME",
    "ENV_VAR",
    "MAX_NAME_LENGTH",
    "KeySource",
    "MasterKey",
    "RotationResult",
    "RotationState",
    "Vault",
    "generate_key_file",
    "load_master_key",
    "load_pending_key",
    "pending_key_path",
    "rotate",
    "validate_name",
]
