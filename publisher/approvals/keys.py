"""Ed25519 key files: private keys encrypted with a passphrase, written 0600, never logged."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from publisher.errors import InvalidInput, KeyProblem

MIN_PASSPHRASE = 12


def check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise InvalidInput(f"The passphrase is shorter than {MIN_PASSPHRASE} characters: choose a longer one")


def write_private_key(path: Path, key: Ed25519PrivateKey, passphrase: str) -> None:
    """Write key encrypted under passphrase; refuses to overwrite; mode 0600 from the start."""
    check_passphrase(passphrase)
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode("utf-8")),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput(f"{path} already exists: move it away first; keys are never overwritten") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def read_private_key(path: Path, passphrase: str) -> Ed25519PrivateKey:
    """Load an encrypted Ed25519 private key; a clear error for every way it can be wrong."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyProblem(f"No key file at {path}: check the path") from None
    except OSError as exc:
        raise KeyProblem(f"Key file {path} cannot be read ({exc.strerror})") from None
    if b"ENCRYPTED PRIVATE KEY" not in data:
        raise KeyProblem(f"{path} is not an encrypted private key file: pass the .pem made by 'publisher trust'")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase.encode("utf-8"))
    except ValueError:
        raise KeyProblem(f"Wrong passphrase for {path} (or the file is damaged): try again") from None
    except TypeError:
        raise KeyProblem(f"{path} cannot be opened with a passphrase") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyProblem(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def read_passphrase_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"Passphrase file {path} cannot be read ({type(exc).__name__})") from None
    return text.rstrip("\r\n")
