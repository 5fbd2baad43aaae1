"""The vault stores, lists and deletes credentials by name, encrypted at rest."""

from __future__ import annotations

import json
import stat
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.errors import InvalidInput, NotFound
from publisher.secrets import ENV_VAR, MAX_NAME_LENGTH, MasterKey, Vault, generate_key_file
from publisher.secrets.vault import NAME_PATTERN

names = st.from_regex(NAME_PATTERN, fullmatch=True).filter(lambda n: len(n) <= MAX_NAME_LENGTH)
values = st.binary(max_size=2048)


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault(tmp_path / "var" / "vault.json", MasterKey.generate())


@settings(max_examples=60, deadline=None)
@given(secrets=st.dictionaries(names, values, max_size=6))
def test_every_value_reads_back_exactly_after_reopening(secrets: dict[str, bytes]) -> None:
    key = MasterKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vault.json"
        writer = Vault(path, key)
        for name, value in secrets.items():
            writer.set(name, value)

        reader = Vault(path, MasterKey.from_text(key.to_text()))
        assert reader.names() == sorted(secrets)
        for name, value in secrets.items():
            assert reader.has(name)
            assert reader.get(name) == value


def test_setting_again_replaces_the_value(vault: Vault) -> None:
    vault.set("x/stmarys", b"first")
    vault.set("x/stmarys", b"second")

    assert vault.get("x/stmarys") == b"second"
    assert vault.names() == ["x/stmarys"]


def test_names_lists_only_names(vault: Vault) -> None:
    vault.set("x/stmarys", b"tok-1")
    vault.set("facebook/stmarys", b"tok-2")

    assert vault.names() == ["facebook/stmarys", "x/stmarys"]


def test_delete_removes_only_that_secret(vault: Vault) -> None:
    vault.set("x/stmarys", b"tok-1")
    vault.set("x/stjohns", b"tok-2")

    vault.delete("x/stmarys")

    assert not vault.has("x/stmarys")
    assert vault.get("x/stjohns") == b"tok-2"
    with pytest.raises(NotFound):
        vault.delete("x/stmarys")


def test_missing_secret_is_not_found_with_a_hint(vault: Vault) -> None:
    with pytest.raises(NotFound) as raised:
        vault.get("x/nowhere")

    assert "x/nowhere" in str(raised.value)
    assert "publisher secrets set" in str(raised.value)


def test_empty_vault_before_first_write(vault: Vault) -> None:
    assert vault.names() == []
    assert not vault.has("x/stmarys")
    assert not vault.path.exists()


@pytest.mark.parametrize(
    "name",
    ["", "x" * (MAX_NAME_LENGTH + 1), "x stmarys", "/x", "x/", "x//y", "x\ny", "x/st marys", "tok\u00e9n", "a:b"],
)
def test_invalid_names_are_refused_and_nothing_is_written(vault: Vault, name: str) -> None:
    with pytest.raises(InvalidInput):
        vault.set(name, b"value")
    assert not vault.path.exists()


def test_longest_valid_name_is_accepted(vault: Vault) -> None:
    name = "x/" + "a" * (MAX_NAME_LENGTH - 2)
    vault.set(name, b"v")
    assert vault.get(name) == b"v"


def test_value_must_be_bytes(vault: Vault) -> None:
    with pytest.raises(TypeError):
        vault.set("x/stmarys", "a str value")  # type: ignore[arg-type]


def test_vault_file_is_private_and_no_temp_files_remain(vault: Vault) -> None:
    for i in range(5):
        vault.set(f"x/school{i}", b"v")

    assert stat.S_IMODE(vault.path.stat().st_mode) == 0o600
    assert sorted(p.name for p in vault.path.parent.iterdir()) == ["vault.json", "vault.json.lock"]


def test_vault_file_records_each_entrys_key_id(vault: Vault) -> None:
    vault.set("x/stmarys", b"v")

    doc = json.loads(vault.path.read_text())

    assert doc["format"] == "trust-publisher-vault"
    assert doc["version"] == 1
    assert doc["entries"]["x/stmarys"]["key_id"] == vault.sealing_key_id
    assert vault.key_ids() == {"x/stmarys": vault.sealing_key_id}


def test_open_loads_the_master_key_from_the_environment(tmp_path: Path) -> None:
    key = MasterKey.generate()
    environ = {ENV_VAR: key.to_text()}
    Vault.open(tmp_path / "vault.json", environ, tmp_path / "master.key").set("x/stmarys", b"v")

    assert Vault(tmp_path / "vault.json", key).get("x/stmarys") == b"v"


def test_open_loads_the_master_key_from_the_key_file(tmp_path: Path) -> None:
    key = generate_key_file(tmp_path / "master.key")
    Vault.open(tmp_path / "vault.json", {}, tmp_path / "master.key").set("x/stmarys", b"v")

    assert Vault(tmp_path / "vault.json", key).get("x/stmarys") == b"v"


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    key = MasterKey.generate()
    path = tmp_path / "vault.json"

    def write(prefix: str) -> None:
        vault = Vault(path, key)  # separate objects: separate locks on the same file
        for i in range(15):
            vault.set(f"{prefix}/{i}", f"{prefix}{i}".encode())

    threads = [threading.Thread(target=write, args=(p,)) for p in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    vault = Vault(path, key)
    assert len(vault.names()) == 45
    assert vault.get("b/7") == b"b7"


def test_repr_hides_the_key(vault: Vault) -> None:
    key = MasterKey.generate()
    shown = repr(Vault(vault.path, key))
    assert key.to_text() not in shown
    assert key.key_id in shown
