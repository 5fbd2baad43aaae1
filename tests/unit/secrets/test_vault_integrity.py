"""A wrong key or a tampered entry is a clear error naming the entry, never a wrong value."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.errors import SecretError, SecretUnreadable
from publisher.secrets import MasterKey, Vault


@pytest.fixture
def key() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def vault(tmp_path: Path, key: MasterKey) -> Vault:
    vault = Vault(tmp_path / "vault.json", key)
    vault.set("x/stmarys", b"token-for-stmarys")
    vault.set("x/stjohns", b"token-for-stjohns")
    return vault


def _edit(path: Path, change: object) -> None:
    doc = json.loads(path.read_text())
    change(doc["entries"])  # type: ignore[operator]
    path.write_text(json.dumps(doc))


def test_wrong_master_key_names_the_entry(vault: Vault) -> None:
    other = Vault(vault.path, MasterKey.generate())

    with pytest.raises(SecretUnreadable) as raised:
        other.get("x/stmarys")

    assert raised.value.name == "x/stmarys"
    assert "'x/stmarys'" in str(raised.value)
    assert "master key" in str(raised.value)


def test_wrong_key_still_lists_names(vault: Vault) -> None:
    assert Vault(vault.path, MasterKey.generate()).names() == ["x/stjohns", "x/stmarys"]


@settings(max_examples=80, deadline=None)
@given(field=st.sampled_from(["nonce", "ciphertext"]), position=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_flipped_bit_is_detected(
    field: str, position: int, bit: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    key = MasterKey.generate()
    vault = Vault(tmp_path_factory.mktemp("v") / "vault.json", key)
    vault.set("x/stmarys", b"token-for-stmarys")

    def flip(entries: dict[str, dict[str, str]]) -> None:
        raw = bytearray(base64.b64decode(entries["x/stmarys"][field]))
        raw[position % len(raw)] ^= 1 << bit
        entries["x/stmarys"][field] = base64.b64encode(bytes(raw)).decode()

    _edit(vault.path, flip)

    with pytest.raises(SecretUnreadable) as raised:
        vault.get("x/stmarys")
    assert raised.value.name == "x/stmarys"


def test_truncated_ciphertext_is_detected(vault: Vault) -> None:
    def cut(entries: dict[str, dict[str, str]]) -> None:
        raw = base64.b64decode(entries["x/stmarys"]["ciphertext"])
        entries["x/stmarys"]["ciphertext"] = base64.b64encode(raw[:-1]).decode()

    _edit(vault.path, cut)

    with pytest.raises(SecretUnreadable):
        vault.get("x/stmarys")


def test_entries_swapped_between_names_are_detected(vault: Vault) -> None:
    def swap(entries: dict[str, object]) -> None:
        entries["x/stmarys"], entries["x/stjohns"] = entries["x/stjohns"], entries["x/stmarys"]

    _edit(vault.path, swap)

    for name in ("x/stmarys", "x/stjohns"):
        with pytest.raises(SecretUnreadable) as raised:
            vault.get(name)
        assert raised.value.name == name


def test_entry_copied_to_a_new_name_is_detected(vault: Vault) -> None:
    def copy(entries: dict[str, object]) -> None:
        entries["x/attacker"] = entries["x/stmarys"]

    _edit(vault.path, copy)

    with pytest.raises(SecretUnreadable):
        vault.get("x/attacker")
    assert vault.get("x/stmarys") == b"token-for-stmarys"


def test_key_id_relabelled_to_another_known_key_is_detected(tmp_path: Path, key: MasterKey) -> None:
    """The key id is bound too: an entry relabelled to the other key of a rotation does not open."""
    pending = MasterKey.generate()
    vault = Vault(tmp_path / "vault.json", key, pending=pending)
    vault.set("x/stmarys", b"v")  # sealed under the pending key
    Vault(vault.path, pending).get("x/stmarys")

    def relabel(entries: dict[str, dict[str, str]]) -> None:
        entries["x/stmarys"]["key_id"] = key.key_id

    _edit(vault.path, relabel)

    with pytest.raises(SecretUnreadable):
        vault.get("x/stmarys")


@pytest.mark.parametrize(
    "bad",
    [
        "not an object",
        {"nonce": "AAAA", "ciphertext": "AAAA"},
        {"key_id": "zz", "nonce": "AAAA", "ciphertext": "AAAA"},
        {"key_id": "0123456789abcdef", "nonce": "***", "ciphertext": "AAAA"},
        {"key_id": "0123456789abcdef", "nonce": 5, "ciphertext": "AAAA"},
    ],
)
def test_malformed_entry_is_unreadable_and_others_still_read(vault: Vault, bad: object) -> None:
    def spoil(entries: dict[str, object]) -> None:
        entries["x/stmarys"] = bad

    _edit(vault.path, spoil)

    with pytest.raises(SecretUnreadable) as raised:
        vault.get("x/stmarys")
    assert raised.value.name == "x/stmarys"
    assert vault.get("x/stjohns") == b"token-for-stjohns"


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"format": "something-else", "version": 1, "entries": {}}',
        b'{"format": "trust-publisher-vault", "version": 99, "entries": {}}',
        b'{"format": "trust-publisher-vault", "version": 1, "entries": []}',
        b'{"format": "trust-publisher-vault", "version": 1, "entries": {"a": {}, "a": {}}}',
        b"\xff\xfe",
    ],
)
def test_damaged_vault_file_is_a_clear_error(vault: Vault, content: bytes) -> None:
    vault.path.write_bytes(content)

    with pytest.raises(SecretError, match=r"vault file .* is damaged"):
        vault.names()
    with pytest.raises(SecretError, match="damaged"):
        vault.set("x/new", b"v")
    assert vault.path.read_bytes() == content, "a damaged vault is never overwritten"
