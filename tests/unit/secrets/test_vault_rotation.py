"""Rotation re-encrypts everything under a new key and keeps every secret readable if killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.errors import SecretError, SecretUnreadable
from publisher.secrets import (
    ENV_VAR,
    KeySource,
    MasterKey,
    RotationState,
    Vault,
    generate_key_file,
    load_master_key,
    load_pending_key,
    pending_key_path,
    rotate,
)
from publisher.secrets.keys import write_pending_key
from publisher.secrets.rotation import ProgressHook

REPO = Path(__file__).resolve().parents[3]

# Rotates the vault and SIGKILLs itself right after entry number KILL_AFTER is on disk.
ROTATE_AND_DIE = """
import os, signal, sys
from pathlib import Path
from publisher.secrets import load_master_key, rotate

vault_path, key_file, kill_after = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])

def progress(name: str, done: int, total: int) -> None:
    if done == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)

rotate(vault_path, load_master_key(os.environ, key_file), key_file, on_progress=progress)
"""


class Interrupted(Exception):
    pass


def _fill(vault: Vault, count: int) -> dict[str, bytes]:
    secrets = {f"acct/{i:03d}": os.urandom(24) for i in range(count)}
    for name, value in secrets.items():
        vault.set(name, value)
    return secrets


def _assert_all_read(vault: Vault, secrets: dict[str, bytes]) -> None:
    assert {name: vault.get(name) for name in secrets} == secrets


def _rotate_in_subprocess_and_kill(vault_path: Path, key_file: Path, kill_after: int, environ: dict[str, str]) -> None:
    env = {**os.environ, **environ, "PYTHONPATH": str(REPO)}
    if ENV_VAR not in environ:
        env.pop(ENV_VAR, None)
    done = subprocess.run(
        [sys.executable, "-c", ROTATE_AND_DIE, str(vault_path), str(key_file), str(kill_after)],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()


def test_rotation_with_a_key_file_replaces_the_key_and_reencrypts_everything(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    old = generate_key_file(key_file)
    vault = Vault.open(tmp_path / "vault.json", {}, key_file)
    secrets = _fill(vault, 5)

    result = rotate(vault.path, load_master_key({}, key_file), key_file)

    assert result.state is RotationState.COMPLETE
    assert result.resealed == 5
    new = load_master_key({}, key_file)
    assert new == result.new_key != old
    assert not pending_key_path(key_file).exists()
    assert set(Vault(vault.path, new).key_ids().values()) == {new.key_id}
    _assert_all_read(Vault(vault.path, new), secrets)
    _assert_all_read(vault, secrets)  # a long-running process that opened the vault follows along
    with pytest.raises(SecretUnreadable):
        Vault(vault.path, old).get("acct/000")


@pytest.mark.parametrize("kill_after", [1, 100, 199])
def test_rotation_killed_half_way_leaves_every_secret_readable(tmp_path: Path, kill_after: int) -> None:
    key_file = tmp_path / "master.key"
    old = generate_key_file(key_file)
    vault_path = tmp_path / "vault.json"
    secrets = _fill(Vault(vault_path, old), 200)

    _rotate_in_subprocess_and_kill(vault_path, key_file, kill_after, {})

    pending = load_pending_key(key_file)
    assert pending is not None
    assert load_master_key({}, key_file) == old, "the key file is replaced only at the end"
    mix = Counter(Vault(vault_path, old).key_ids().values())
    assert mix == {pending.key_id: kill_after, old.key_id: 200 - kill_after}
    _assert_all_read(Vault.open(vault_path, {}, key_file), secrets)
    _assert_all_read(Vault(vault_path, old, pending=pending), secrets)

    result = rotate(vault_path, load_master_key({}, key_file), key_file)

    assert result.state is RotationState.COMPLETE
    assert result.new_key == pending
    assert result.resealed == 200 - kill_after
    assert load_master_key({}, key_file) == pending
    assert not pending_key_path(key_file).exists()
    _assert_all_read(Vault(vault_path, pending), secrets)
    _assert_all_read(Vault.open(vault_path, {}, key_file), secrets)


def test_rotation_stopped_right_after_writing_the_pending_key_is_resumed(tmp_path: Path) -> None:
    """The state a kill leaves between step 2 (pending key on disk) and the first entry."""
    key_file = tmp_path / "master.key"
    old = generate_key_file(key_file)
    vault = Vault(tmp_path / "vault.json", old)
    secrets = _fill(vault, 3)
    pending = write_pending_key(key_file, MasterKey.generate())

    _assert_all_read(Vault.open(vault.path, {}, key_file), secrets)
    result = rotate(vault.path, load_master_key({}, key_file), key_file)

    assert result.new_key == pending
    assert result.resealed == 3
    _assert_all_read(Vault(vault.path, pending), secrets)


def _interrupt_at(stop: int) -> ProgressHook:
    def progress(name: str, done: int, total: int) -> None:
        if done == stop:
            raise Interrupted

    return progress


@settings(max_examples=25, deadline=None)
@given(count=st.integers(1, 8), data=st.data())
def test_interrupted_at_any_entry_then_resumed_reads_everything(count: int, data: st.DataObject) -> None:
    stop = data.draw(st.integers(1, count))
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "master.key"
        generate_key_file(key_file)
        vault = Vault.open(Path(tmp) / "vault.json", {}, key_file)
        secrets = _fill(vault, count)

        def progress(name: str, done: int, total: int) -> None:
            if done == stop:
                raise Interrupted

        with pytest.raises(Interrupted):
            rotate(vault.path, load_master_key({}, key_file), key_file, on_progress=progress)
        _assert_all_read(vault, secrets)
        vault.set("acct/added-mid-rotation", b"late")  # sealed under the pending key

        rotate(vault.path, load_master_key({}, key_file), key_file)

        secrets["acct/added-mid-rotation"] = b"late"
        _assert_all_read(Vault(vault.path, load_master_key({}, key_file)), secrets)


def test_rotation_with_the_key_in_the_environment_waits_for_the_operator(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"  # never created: the key lives in the environment
    old = MasterKey.generate()
    environ = {ENV_VAR: old.to_text()}
    vault_path = tmp_path / "vault.json"
    secrets = _fill(Vault.open(vault_path, environ, key_file), 4)

    result = rotate(vault_path, load_master_key(environ, key_file), key_file)

    assert result.state is RotationState.STORE_NEW_KEY
    assert load_pending_key(key_file) == result.new_key, "the new key is kept until the operator stores it"
    assert not key_file.exists(), "no key file appears that the environment would override"
    _assert_all_read(Vault.open(vault_path, environ, key_file), secrets)

    again = rotate(vault_path, load_master_key(environ, key_file), key_file)
    assert again.state is RotationState.STORE_NEW_KEY
    assert again.new_key == result.new_key
    assert again.resealed == 0

    environ[ENV_VAR] = result.new_key.to_text()  # the operator updates the service's environment
    final = rotate(vault_path, load_master_key(environ, key_file), key_file)

    assert final.state is RotationState.COMPLETE
    assert not pending_key_path(key_file).exists()
    _assert_all_read(Vault.open(vault_path, environ, key_file), secrets)


def test_environment_rotation_killed_half_way_is_resumed(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    old = MasterKey.generate()
    environ = {ENV_VAR: old.to_text()}
    vault_path = tmp_path / "vault.json"
    secrets = _fill(Vault(vault_path, old), 50)

    _rotate_in_subprocess_and_kill(vault_path, key_file, 20, environ)

    _assert_all_read(Vault.open(vault_path, environ, key_file), secrets)
    result = rotate(vault_path, load_master_key(environ, key_file), key_file)
    assert result.state is RotationState.STORE_NEW_KEY
    assert result.resealed == 30
    _assert_all_read(Vault(vault_path, result.new_key), secrets)


def test_a_different_new_key_while_a_rotation_is_pending_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    generate_key_file(key_file)
    vault_path = tmp_path / "vault.json"
    Vault.open(vault_path, {}, key_file).set("acct/a", b"v")
    with pytest.raises(Interrupted):
        rotate(vault_path, load_master_key({}, key_file), key_file, on_progress=_interrupt_at(1))

    with pytest.raises(SecretError, match="already under way"):
        rotate(vault_path, load_master_key({}, key_file), key_file, new=MasterKey.generate())


def test_an_entry_under_an_unknown_key_stops_rotation_before_any_change(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    old = generate_key_file(key_file)
    vault_path = tmp_path / "vault.json"
    Vault(vault_path, old).set("acct/a", b"v")
    Vault(vault_path, MasterKey.generate()).set("acct/stray", b"v")
    before = vault_path.read_bytes()

    with pytest.raises(SecretUnreadable) as raised:
        rotate(vault_path, load_master_key({}, key_file), key_file)

    assert raised.value.name == "acct/stray"
    assert vault_path.read_bytes() == before
    assert load_pending_key(key_file) is None
    assert load_master_key({}, key_file) == old


def test_rotating_an_empty_vault_just_replaces_the_key(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    old = generate_key_file(key_file)

    result = rotate(tmp_path / "vault.json", load_master_key({}, key_file), key_file)

    assert result.resealed == 0
    assert load_master_key({}, key_file) != old
    assert load_master_key({}, key_file).source is KeySource.KEY_FILE
