"""Planted credentials and master keys never appear in clear: not in the vault file, not in
exception messages or tracebacks, not in log records, not in reprs."""

from __future__ import annotations

import base64
import json
import logging
import secrets
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from publisher.errors import PublisherError
from publisher.secrets import (
    ENV_VAR,
    MasterKey,
    Vault,
    generate_key_file,
    load_master_key,
    rotate,
)


def _forms(secret: bytes) -> list[bytes]:
    """The clear forms a leak could take."""
    return [secret, base64.b64encode(secret), base64.urlsafe_b64encode(secret), secret.hex().encode()]


def _capture(action: Callable[[], object]) -> BaseException:
    with pytest.raises((PublisherError, TypeError)) as raised:
        action()
    return raised.value


def _exception_text(exc: BaseException) -> str:
    return repr(exc) + "\n" + "".join(traceback.format_exception(exc))


def _break_everything(tmp_path: Path, vault: Vault, planted: dict[str, bytes]) -> list[BaseException]:
    """Cause every error the vault can raise while planted secrets are around."""
    name = next(iter(planted))
    value_text = planted[name].decode()
    raised = [
        _capture(lambda: Vault(vault.path, MasterKey.generate()).get(name)),
        _capture(lambda: vault.get("acct/none")),
        _capture(lambda: vault.set(value_text + " !", b"x")),  # a value typed as a name
        _capture(lambda: vault.set(name, value_text)),  # type: ignore[arg-type]
        _capture(lambda: load_master_key({ENV_VAR: value_text}, tmp_path / "none.key")),
    ]
    bad_file = tmp_path / "bad.key"
    bad_file.write_text(value_text)
    bad_file.chmod(0o600)
    raised.append(_capture(lambda: load_master_key({}, bad_file)))
    open_file = tmp_path / "open.key"
    open_file.write_text(MasterKey.generate().to_text())
    open_file.chmod(0o644)
    raised.append(_capture(lambda: load_master_key({}, open_file)))

    doc = json.loads(vault.path.read_text())
    entry = doc["entries"][name]
    sealed = base64.b64decode(entry["ciphertext"])  # its first byte flipped: always a change
    entry["ciphertext"] = base64.b64encode(bytes([sealed[0] ^ 0xFF]) + sealed[1:]).decode()
    vault.path.write_text(json.dumps(doc))
    raised.append(_capture(lambda: vault.get(name)))
    raised.append(_capture(lambda: rotate(vault.path, MasterKey.generate(), tmp_path / "other.key")))
    vault.path.write_text(value_text + "{")
    raised.append(_capture(lambda: vault.names()))
    return raised


def test_planted_secrets_never_appear_in_clear(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key_file = tmp_path / "var" / "master.key"
    first_key = generate_key_file(key_file)
    vault = Vault.open(tmp_path / "var" / "vault.json", {}, key_file)
    planted = {f"acct/{i}": f"PLANTED-{secrets.token_hex(16)}".encode() for i in range(8)}

    for name, value in planted.items():
        vault.set(name, value)
    assert {name: vault.get(name) for name in planted} == planted
    result = rotate(vault.path, load_master_key({}, key_file), key_file)
    assert {name: vault.get(name) for name in planted} == planted

    leaks: list[bytes] = [f.encode() for f in (first_key.to_text(), result.new_key.to_text())]
    leaks += [form for value in planted.values() for form in _forms(value)]
    stored = b"".join(p.read_bytes() for p in vault.path.parent.iterdir() if not p.name.startswith("master.key"))
    shown = repr(vault) + repr(result) + repr(first_key) + str(result.new_key)
    assert caplog.records, "the vault logs what it does (names only)"

    exceptions = _break_everything(tmp_path, vault, planted)
    texts = [_exception_text(exc) for exc in exceptions]
    logged = caplog.text + "".join(repr(r.args) + r.getMessage() for r in caplog.records)

    for leak in leaks:
        assert leak not in stored
        text = leak.decode()
        assert text not in shown
        assert text not in logged
        for exc_text in texts:
            assert text not in exc_text


def test_error_messages_name_the_entry(tmp_path: Path) -> None:
    vault = Vault(tmp_path / "vault.json", MasterKey.generate())
    vault.set("x/stmarys", b"PLANTED-" + secrets.token_hex(8).encode())

    message = str(_capture(lambda: Vault(vault.path, MasterKey.generate()).get("x/stmarys")))

    assert "x/stmarys" in message
    assert "PLANTED" not in message
