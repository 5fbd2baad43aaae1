"""Where the master key comes from, in which order, and which key files are refused."""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import pytest

from publisher.errors import MasterKeyInsecure, MasterKeyMissing, SecretError
from publisher.secrets import (
    CREDENTIAL_NAME,
    ENV_VAR,
    KeySource,
    MasterKey,
    generate_key_file,
    load_master_key,
    load_pending_key,
    pending_key_path,
)


def _write_key(path: Path, key: MasterKey, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key.to_text() + "\n")
    path.chmod(mode)


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    """(key file path, credentials directory), both empty."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    return tmp_path / "var" / "master.key", creds


def test_environment_wins_over_key_file_and_credentials(places: tuple[Path, Path]) -> None:
    key_file, creds = places
    env_key, file_key, cred_key = MasterKey.generate(), MasterKey.generate(), MasterKey.generate()
    _write_key(key_file, file_key)
    _write_key(creds / CREDENTIAL_NAME, cred_key, 0o400)
    environ = {ENV_VAR: env_key.to_text(), "CREDENTIALS_DIRECTORY": str(creds)}

    loaded = load_master_key(environ, key_file)

    assert loaded == env_key
    assert loaded.source is KeySource.ENV


def test_key_file_wins_over_credentials(places: tuple[Path, Path]) -> None:
    key_file, creds = places
    file_key, cred_key = MasterKey.generate(), MasterKey.generate()
    _write_key(key_file, file_key)
    _write_key(creds / CREDENTIAL_NAME, cred_key, 0o400)

    loaded = load_master_key({"CREDENTIALS_DIRECTORY": str(creds)}, key_file)

    assert loaded == file_key
    assert loaded.source is KeySource.KEY_FILE


def test_systemd_credential_used_when_nothing_else(places: tuple[Path, Path]) -> None:
    key_file, creds = places
    cred_key = MasterKey.generate()
    _write_key(creds / CREDENTIAL_NAME, cred_key, 0o400)

    loaded = load_master_key({"CREDENTIALS_DIRECTORY": str(creds)}, key_file)

    assert loaded == cred_key
    assert loaded.source is KeySource.CREDENTIALS


def test_empty_environment_variable_counts_as_unset(places: tuple[Path, Path]) -> None:
    key_file, _ = places
    file_key = MasterKey.generate()
    _write_key(key_file, file_key)

    assert load_master_key({ENV_VAR: ""}, key_file) == file_key


def test_missing_key_says_how_to_create_one(places: tuple[Path, Path]) -> None:
    key_file, creds = places  # credentials directory exists but holds no key

    with pytest.raises(MasterKeyMissing) as raised:
        load_master_key({"CREDENTIALS_DIRECTORY": str(creds)}, key_file)

    message = str(raised.value)
    assert "publisher init" in message
    assert str(key_file) in message
    assert ENV_VAR in message


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o610])
def test_key_file_readable_by_others_is_refused(places: tuple[Path, Path], mode: int) -> None:
    key_file, _ = places
    _write_key(key_file, MasterKey.generate(), mode)

    with pytest.raises(MasterKeyInsecure) as raised:
        load_master_key({}, key_file)

    assert str(key_file) in str(raised.value)
    assert "chmod 600" in str(raised.value)


def test_owner_only_modes_are_accepted(places: tuple[Path, Path]) -> None:
    key_file, _ = places
    key = MasterKey.generate()
    for mode in (0o600, 0o400):
        _write_key(key_file, key, mode)
        assert load_master_key({}, key_file) == key
        key_file.chmod(0o600)


def test_world_readable_credential_is_refused(places: tuple[Path, Path]) -> None:
    key_file, creds = places
    _write_key(creds / CREDENTIAL_NAME, MasterKey.generate(), 0o444)

    with pytest.raises(MasterKeyInsecure):
        load_master_key({"CREDENTIALS_DIRECTORY": str(creds)}, key_file)


def test_insecure_pending_key_is_refused(places: tuple[Path, Path]) -> None:
    key_file, _ = places
    _write_key(pending_key_path(key_file), MasterKey.generate(), 0o644)

    with pytest.raises(MasterKeyInsecure):
        load_pending_key(key_file)


@pytest.mark.parametrize(
    "text",
    ["not-a-key", "A" * 42, "A" * 45, "!" * 44, "QUJD" * 11, "\u00e9" * 43],
)
def test_malformed_key_in_environment_is_a_clear_error_without_the_text(places: tuple[Path, Path], text: str) -> None:
    key_file, _ = places

    with pytest.raises(SecretError) as raised:
        load_master_key({ENV_VAR: text}, key_file)

    assert ENV_VAR in str(raised.value)
    assert text not in str(raised.value)
    assert text not in repr(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None or raised.value.__suppress_context__


def test_malformed_key_file_is_a_clear_error_without_the_text(places: tuple[Path, Path]) -> None:
    key_file, _ = places
    key_file.parent.mkdir(parents=True)
    secretish = "hunter2-looks-like-a-password-but-is-not-a-key"
    key_file.write_text(secretish)
    key_file.chmod(0o600)

    with pytest.raises(SecretError) as raised:
        load_master_key({}, key_file)

    assert str(key_file) in str(raised.value)
    assert secretish not in str(raised.value)


def test_generate_key_file_is_private_exclusive_and_loadable(tmp_path: Path) -> None:
    key_file = tmp_path / "var" / "master.key"

    key = generate_key_file(key_file)

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_master_key({}, key_file) == key
    with pytest.raises(SecretError, match="already exists"):
        generate_key_file(key_file)
    assert load_master_key({}, key_file) == key, "an existing key must never be overwritten"
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["master.key"], "no temp file left"


def test_generate_key_file_ignores_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        generate_key_file(tmp_path / "master.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600


def test_text_form_round_trips_with_or_without_padding() -> None:
    key = MasterKey.generate()
    text = key.to_text()

    assert len(text) == 44
    assert MasterKey.from_text(text) == key
    assert MasterKey.from_text(text.rstrip("=")) == key
    assert MasterKey.from_text(f"  {text}\n") == key


def test_repr_and_str_show_only_the_fingerprint() -> None:
    key = MasterKey.generate()

    for shown in (repr(key), str(key), f"{key}", repr([key])):
        assert key.to_text() not in shown
        assert key.to_text().rstrip("=") not in shown
        assert key.key_id in shown


def test_key_cannot_be_pickled_by_accident() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(MasterKey.generate())


def test_key_id_is_a_stable_fingerprint() -> None:
    key = MasterKey.generate()

    assert MasterKey.from_text(key.to_text()).key_id == key.key_id
    assert MasterKey.generate().key_id != key.key_id
    assert len(key.key_id) == 16
