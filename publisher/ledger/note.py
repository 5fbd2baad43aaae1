"""C2SP signed notes (Ed25519), tlog checkpoints and tlog proofs.

Pure: keys, texts and hashes come in as parameters. Formats:

- signed-note (c2sp.org/signed-note@v1.0.0): text ending in a newline, a blank line, then
  lines ``— <name> base64(keyID[4] || signature)``. Ed25519 is type 0x01 and
  keyID = SHA-256(name || "\\n" || 0x01 || pubkey)[:4]. A verifier key ("vkey") is
  ``name+hex(keyID)+base64(0x01 || pubkey)``.
- tlog-checkpoint: origin line, decimal tree size, base64 root hash, optional extension lines.
- tlog-proof (c2sp.org/tlog-proof@v1): header, optional ``extra`` line, ``index N``, the
  inclusion proof one base64 hash a line, a blank line, then the checkpoint note verbatim.

Failures raise ``LedgerError`` with a message saying what did not hold.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from publisher.errors import LedgerError
from publisher.ledger import merkle

ED25519_TYPE = 0x01
SIG_PREFIX = "\u2014 "
MAX_SIGNATURES = 64
PROOF_HEADER = "c2sp.org/tlog-proof@v1"


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise LedgerError(f"{what} is not valid base64") from exc


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise LedgerError(f"key name {name!r} must be non-empty, without spaces or '+'")


def key_id(name: str, public_key: bytes, sig_type: int = ED25519_TYPE) -> bytes:
    """SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    """An Ed25519 note verifier: key name, key id and public key."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey) -> NoteVerifier:
        _check_name(name)
        return cls(name, key_id(name, _raw_public(public_key)), public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``name+hex(keyID)+base64(0x01 || pubkey)`` (split on the first two '+')."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise LedgerError("a vkey has three '+'-separated parts: name, key id, key")
        name, hex_id, b64_key = parts
        _check_name(name)
        if len(hex_id) != 8:
            raise LedgerError("a vkey key id is 8 hex digits")
        try:
            kid = bytes.fromhex(hex_id)
        except ValueError as exc:
            raise LedgerError("a vkey key id is 8 hex digits") from exc
        material = _b64decode(b64_key, "vkey key")
        if len(material) != 33 or material[0] != ED25519_TYPE:
            raise LedgerError("only Ed25519 vkeys (type 0x01, 32-byte key) are supported")
        if key_id(name, material[1:]) != kid:
            raise LedgerError("vkey key id does not match its name and key")
        return cls(name, kid, Ed25519PublicKey.from_public_bytes(material[1:]))

    @property
    def vkey(self) -> str:
        material = bytes([ED25519_TYPE]) + _raw_public(self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(material).decode()}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 note signer. The private key never leaves this object."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier.from_public_key(self.name, self.private_key.public_key())

    @property
    def key_id(self) -> bytes:
        return self.verifier.key_id

    def signature_line(self, text: bytes) -> str:
        sig = self.key_id + self.private_key.sign(text)
        return f"{SIG_PREFIX}{self.name} {base64.b64encode(sig).decode()}\n"

    def __repr__(self) -> str:
        return f"NoteSigner(name={self.name!r}, key_id={self.key_id.hex()})"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise LedgerError("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise LedgerError("note text must not contain control characters")


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """A signed note: ``text`` (ending in a newline), a blank line, one line per signer."""
    _check_text(text)
    if not signers:
        raise LedgerError("a signed note needs at least one signer")
    data = text.encode("utf-8")
    return text + "\n" + "".join(s.signature_line(data) for s in signers)


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """Split a note into its text and signature lines, without verifying anything."""
    _check_text(note)
    cut = note.rfind("\n\n")
    if cut < 0:
        raise LedgerError("signed note has no blank line before its signatures")
    text, sig_block = note[: cut + 1], note[cut + 2 :]
    lines = sig_block.split("\n")[:-1]
    if not lines or len(lines) > MAX_SIGNATURES:
        raise LedgerError(f"signed note must have 1 to {MAX_SIGNATURES} signature lines")
    return text, [_parse_signature_line(line) for line in lines]


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIG_PREFIX):
        raise LedgerError("malformed signature line in note")
    name, sep, b64 = line[len(SIG_PREFIX) :].rpartition(" ")
    if not sep:
        raise LedgerError("malformed signature line in note")
    _check_name(name)
    raw = _b64decode(b64, "note signature")
    if len(raw) < 5:
        raise LedgerError("note signature is too short")
    return NoteSignature(name, raw[:4], raw[4:])


def open_note(note: str, verifiers: Iterable[NoteVerifier]) -> str:
    """Verify ``note`` and return its text.

    Unknown keys are ignored; a known key whose signature fails rejects the note; at least
    one known key must have signed.
    """
    text, sigs = split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    data = text.encode("utf-8")
    verified = 0
    for sig in sigs:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verify(data, sig.signature):
            raise LedgerError(f"note signature by {sig.name} does not verify")
        verified += 1
    if not verified:
        raise LedgerError("note is not signed by any trusted key")
    return text


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint body: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise LedgerError("checkpoint origin must be one non-empty line")
        if self.size < 0 or len(self.root_hash) != merkle.HASH_SIZE:
            raise LedgerError("checkpoint needs a size >= 0 and a 32-byte root hash")
        if any(not ext or "\n" in ext for ext in self.extensions):
            raise LedgerError("checkpoint extension lines must be non-empty single lines")

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode(), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise LedgerError("checkpoint text needs origin, size and root lines")
        origin, size_text, root_text, *extensions = lines[:-1]
        if not size_text.isdigit() or not size_text.isascii() or (size_text != "0" and size_text[0] == "0"):
            raise LedgerError(f"checkpoint size {size_text!r} is not a decimal without leading zeros")
        root_hash = _b64decode(root_text, "checkpoint root hash")
        return cls(origin, int(size_text), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The checkpoint as a signed note."""
    return sign_note(checkpoint.text(), [signer])


def open_checkpoint(note: str, verifier: NoteVerifier, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint note and return its body; the origin must match if given."""
    checkpoint = Checkpoint.parse(open_note(note, [verifier]))
    expected = verifier.name if origin is None else origin
    if checkpoint.origin != expected:
        raise LedgerError(f"checkpoint origin {checkpoint.origin!r} is not {expected!r}")
    return checkpoint


@dataclass(frozen=True)
class TlogProof:
    """A parsed c2sp.org/tlog-proof@v1 (not yet verified)."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None

    def text(self) -> str:
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode() for h in self.proof)
        return "\n".join(lines) + "\n\n" + self.checkpoint_note

    @classmethod
    def parse(cls, text: str) -> TlogProof:
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise LedgerError("tlog proof has no blank line before its checkpoint")
        lines = head.split("\n")
        if lines[0] != PROOF_HEADER:
            raise LedgerError(f"tlog proof must start with {PROOF_HEADER}")
        rest = lines[1:]
        extra = None
        if rest and rest[0].startswith("extra "):
            extra = _b64decode(rest.pop(0)[len("extra ") :], "tlog proof extra data")
        if not rest or not rest[0].startswith("index "):
            raise LedgerError("tlog proof has no index line")
        index_text = rest.pop(0)[len("index ") :]
        if not index_text.isdigit() or not index_text.isascii() or (index_text != "0" and index_text[0] == "0"):
            raise LedgerError(f"tlog proof index {index_text!r} is not a decimal without leading zeros")
        hashes = tuple(_b64decode(line, "tlog proof hash") for line in rest)
        if any(len(h) != merkle.HASH_SIZE for h in hashes):
            raise LedgerError("tlog proof hashes must be 32 bytes")
        return cls(int(index_text), hashes, note, extra)


@dataclass(frozen=True)
class VerifiedProof:
    index: int
    leaf_hash: bytes
    extra: bytes | None
    checkpoint: Checkpoint


def verify_tlog_proof(
    text: str, vkey: str | NoteVerifier, *, leaf_hash: bytes | None = None, origin: str | None = None
) -> VerifiedProof:
    """Verify a tlog proof offline with the log's vkey.

    The leaf hash is ``leaf_hash`` if given, else SHA-256(0x00 || extra): the extra data is
    then the logged entry itself, authenticated by the inclusion proof.
    """
    verifier = vkey if isinstance(vkey, NoteVerifier) else NoteVerifier.from_vkey(vkey)
    proof = TlogProof.parse(text)
    checkpoint = open_checkpoint(proof.checkpoint_note, verifier, origin)
    if leaf_hash is None:
        if proof.extra is None:
            raise LedgerError("tlog proof carries no entry (extra line) and no leaf hash was given")
        leaf_hash = merkle.leaf_hash(proof.extra)
    try:
        merkle.verify_inclusion(proof.index, checkpoint.size, leaf_hash, proof.proof, checkpoint.root_hash)
    except merkle.ProofError as exc:
        raise LedgerError(f"tlog proof for index {proof.index} does not verify: {exc}") from exc
    return VerifiedProof(proof.index, leaf_hash, proof.extra, checkpoint)
