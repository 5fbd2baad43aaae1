"""C2SP signed notes, checkpoints and tlog proofs."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from publisher.errors import LedgerError
from publisher.ledger import merkle
from publisher.ledger.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    TlogProof,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
    verify_tlog_proof,
)

# From c2sp/signed-note.md, "Verifier keys / Example".
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def _signer(name: str = "trust.example/log") -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.generate())


def test_spec_example_vkey_verifies_spec_note() -> None:
    verifier = NoteVerifier.from_vkey(SPEC_VKEY)
    assert verifier.name == "example.com/foo"
    assert verifier.key_id.hex() == "530d903a"
    assert verifier.vkey == SPEC_VKEY
    assert open_note(SPEC_NOTE, [verifier]) == "This is an example message.\n"


def test_spec_note_altered_is_rejected() -> None:
    verifier = NoteVerifier.from_vkey(SPEC_VKEY)
    with pytest.raises(LedgerError):
        open_note(SPEC_NOTE.replace("example message", "exemplary message"), [verifier])


def test_vkey_whose_base64_contains_plus_parses() -> None:
    # The vkey is split on the first two '+' only: base64 can contain '+' itself.
    for _ in range(200):
        signer = _signer()
        vkey = signer.verifier.vkey
        if "+" in vkey.split("+", 2)[2]:
            break
    else:
        pytest.skip("no key with '+' in its base64 in 200 tries")
    assert NoteVerifier.from_vkey(vkey).vkey == vkey


@pytest.mark.parametrize(
    "vkey",
    [
        "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong key id
        "example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong name
        "example.com/foo+530d903a+AiyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # not type 0x01
        "example.com/foo+530d903a",
    ],
)
def test_bad_vkeys_are_rejected(vkey: str) -> None:
    with pytest.raises(LedgerError):
        NoteVerifier.from_vkey(vkey)


def test_unknown_signatures_are_ignored_but_one_known_is_required() -> None:
    log, witness, stranger = _signer(), _signer("witness.example"), _signer("other.example")
    note = sign_note("hello\n", [witness, log])
    assert open_note(note, [log.verifier]) == "hello\n"
    with pytest.raises(LedgerError, match="not signed by any trusted key"):
        open_note(note, [stranger.verifier])


def test_known_key_with_bad_signature_rejects_note() -> None:
    log = _signer()
    impostor = NoteSigner(log.name, Ed25519PrivateKey.generate())
    forged = sign_note("hello\n", [impostor])
    # Same name, different key id: ignored, so nothing trusted signed it.
    with pytest.raises(LedgerError):
        open_note(forged, [log.verifier])
    good = sign_note("hello\n", [log])
    text, sig_line = good.split("\n\n")
    raw = bytearray(base64.b64decode(sig_line.split(" ")[-1]))
    raw[10] ^= 1
    tampered = f"{text}\n\n\u2014 {log.name} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(LedgerError, match="does not verify"):
        open_note(tampered, [log.verifier])


def test_checkpoint_round_trip_and_origin_check() -> None:
    signer = _signer()
    checkpoint = Checkpoint(signer.name, 20852163, bytes(range(32)), ("ext line",))
    note = sign_checkpoint(checkpoint, signer)
    assert note.startswith(f"{signer.name}\n20852163\n")
    assert open_checkpoint(note, signer.verifier) == checkpoint
    with pytest.raises(LedgerError, match="origin"):
        open_checkpoint(note, signer.verifier, origin="elsewhere.example/log")


@pytest.mark.parametrize("size", ["007", "-1", "1e3", ""])
def test_checkpoint_size_must_be_plain_decimal(size: str) -> None:
    text = f"o.example\n{size}\n{base64.b64encode(bytes(32)).decode()}\n"
    with pytest.raises(LedgerError):
        Checkpoint.parse(text)


def _proof_fixture() -> tuple[NoteSigner, list[bytes], list[bytes], str]:
    signer = _signer()
    entries = [f"entry {i}".encode() for i in range(11)]
    leaves = [merkle.leaf_hash(e) for e in entries]
    note = sign_checkpoint(Checkpoint(signer.name, len(leaves), merkle.root(leaves)), signer)
    return signer, entries, leaves, note


def test_tlog_proof_round_trip_verifies_offline_with_vkey_only() -> None:
    signer, entries, leaves, note = _proof_fixture()
    proof = TlogProof(6, tuple(merkle.inclusion_proof(6, leaves)), note, extra=entries[6])
    text = proof.text()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    assert TlogProof.parse(text) == proof
    verified = verify_tlog_proof(text, signer.verifier.vkey)
    assert (verified.index, verified.extra) == (6, entries[6])


def test_tlog_proof_without_extra_needs_the_leaf_hash() -> None:
    signer, _, leaves, note = _proof_fixture()
    text = TlogProof(3, tuple(merkle.inclusion_proof(3, leaves)), note).text()
    assert verify_tlog_proof(text, signer.verifier, leaf_hash=leaves[3]).index == 3
    with pytest.raises(LedgerError):
        verify_tlog_proof(text, signer.verifier)
    with pytest.raises(LedgerError):
        verify_tlog_proof(text, signer.verifier, leaf_hash=leaves[4])


def test_tlog_proof_with_other_entry_index_or_key_fails() -> None:
    signer, entries, leaves, note = _proof_fixture()
    path = tuple(merkle.inclusion_proof(6, leaves))
    with pytest.raises(LedgerError):
        verify_tlog_proof(TlogProof(6, path, note, extra=entries[5]).text(), signer.verifier)
    with pytest.raises(LedgerError):
        verify_tlog_proof(TlogProof(7, path, note, extra=entries[6]).text(), signer.verifier)
    with pytest.raises(LedgerError):
        verify_tlog_proof(TlogProof(6, path, note, extra=entries[6]).text(), _signer().verifier)
