"""Plant known secrets, run the whole approval path (and its failures), and grep every output,
log record, database byte and data file for them in clear (raw, hex and base64)."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from publisher.approvals.keys import read_private_key
from tests.conftest import Workspace

from .helpers import HEAD_PW, ROOT_PW, photo, seed

CREDENTIAL = "planted-access-token-6b1f0c9e2d7a"


def _forms(secret: bytes) -> list[bytes]:
    return [secret, secret.hex().encode(), base64.b64encode(secret), base64.urlsafe_b64encode(secret).rstrip(b"=")]


def _raw_private(path: Path, pw: str) -> bytes:
    return read_private_key(path, pw).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def test_planted_secrets_appear_nowhere_in_clear(workspace: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    s = seed(workspace)
    outputs = []
    r = workspace.run(
        "secrets", "set", "account/stmarys-facebook", stdin=f'{{"page_id":"1","access_token":"{CREDENTIAL}"}}'
    )
    assert r.code == 0
    outputs.append(r)
    pid = s.draft("Amelia's art", "--subject", f"{s.amelia}:image+name", "--media", str(photo(workspace.dir / "a.jpg")))
    outputs.append(workspace.run("post", "show", pid, "--json"))
    wrong = workspace.write("wrong.pw", "definitely-the-wrong-passphrase")
    for pw in (wrong, workspace.dir / "head.pw"):
        outputs.append(
            workspace.run(
                "-v", "post", "approve", pid, "--key", str(s.key), "--passphrase-file", str(pw), actor="Jane Head"
            )
        )
    outputs.append(
        workspace.run(
            "-v",
            "trust",
            "approver",
            "add",
            "--name",
            "X",
            "--role",
            "headteacher",
            "--root-passphrase-file",
            str(wrong),
            "--passphrase-file",
            str(wrong),
        )
    )
    outputs.append(workspace.run("secrets", "list"))
    outputs.append(workspace.run("trust", "approver", "list", "--json"))

    var = workspace.dir / "var"
    planted = {
        "root passphrase": _forms(ROOT_PW.encode()),
        "approver passphrase": _forms(HEAD_PW.encode()),
        "root private key": _forms(_raw_private(var / "keys" / "trust-root.pem", ROOT_PW)),
        "approver private key": _forms(_raw_private(s.key, HEAD_PW)),
        "platform credential": _forms(CREDENTIAL.encode()),
    }
    master = (var / "keys" / "master.key").read_text().strip().encode()
    text = "\n".join(r.out + r.err for r in outputs).encode() + b"\n" + caplog.text.encode()
    files = {p: p.read_bytes() for p in var.rglob("*") if p.is_file() and p.name != "master.key"}
    files[workspace.config] = workspace.config.read_bytes()
    for what, forms in {**planted, "vault master key": [master]}.items():
        for form in forms:
            assert form not in text, f"{what} printed or logged"
            for path, data in files.items():
                assert form not in data, f"{what} found in clear in {path}"
    assert any(b"publisher.db" in str(p).encode() for p in files)  # the database was among the files searched
    assert "Approved by Jane Head" in outputs[3].out  # and the path really ran
