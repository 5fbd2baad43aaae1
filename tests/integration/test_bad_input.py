"""Every input a user can get wrong: one clear line, a non-zero exit, and the store untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from tests.conftest import Workspace, make_workspace

from .helpers import HEAD_PW, SOON, Seeded, dump_sqlite, photo, seed


@pytest.fixture
def s(workspace: Workspace) -> Seeded:
    return seed(workspace)


def _refused(s: Seeded, *args: str, expect: str, actor: str = "Sam Teacher") -> None:
    db = s.ws.dir / "var" / "publisher.db"
    media = sorted(p.name for p in (s.ws.dir / "var" / "media").rglob("*"))
    before = dump_sqlite(db)
    r = s.ws.run(*args, actor=actor)
    assert r.code != 0, r.out
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1, r.err
    assert expect.lower() in lines[0].lower(), lines[0]
    assert dump_sqlite(db) == before
    assert sorted(p.name for p in (s.ws.dir / "var" / "media").rglob("*")) == media


def _draft(*extra: str) -> list[str]:
    return ["post", "draft", "--text", "hello", "--account", "stmarys-x", "--at", SOON, *extra]


def test_unknown_subject_account_and_post(s: Seeded) -> None:
    _refused(s, *_draft("--subject", "S-NOPE"), expect="No subject S-NOPE")
    _refused(s, "post", "draft", "--text", "hi", "--account", "nope", "--at", SOON, expect="No account nope")
    _refused(s, "post", "show", "P-NOPE", expect="No post P-NOPE")
    _refused(
        s,
        "consent",
        "grant",
        "S-NOPE",
        "--platform",
        "x",
        "--scope",
        "image",
        "--evidence",
        "f",
        expect="No subject S-NOPE",
    )


def test_unknown_platform_and_scope(s: Seeded) -> None:
    _refused(
        s,
        "consent",
        "grant",
        s.oliver,
        "--platform",
        "tiktok",
        "--scope",
        "image",
        "--evidence",
        "f",
        expect="'tiktok' is not one of",
    )
    _refused(s, *_draft("--subject", f"{s.oliver}:voice"), expect="use ID, ID:image")


def test_dates_in_the_past_and_malformed(s: Seeded) -> None:
    _refused(
        s, "post", "draft", "--text", "hi", "--account", "stmarys-x", "--at", "2020-01-01 10:00", expect="in the past"
    )
    _refused(
        s,
        "post",
        "draft",
        "--text",
        "hi",
        "--account",
        "stmarys-x",
        "--at",
        "next tuesday",
        expect="is not a time like",
    )
    _refused(
        s,
        "consent",
        "grant",
        s.oliver,
        "--platform",
        "x",
        "--scope",
        "image",
        "--evidence",
        "f",
        "--expires",
        "2020-01-01",
        expect="in the past",
    )


def test_wrong_passphrase_and_wrong_key_kind(s: Seeded) -> None:
    pid = s.draft("Assembly")
    bad = s.ws.write("bad.pw", "not the passphrase at all")
    _refused(
        s,
        "post",
        "approve",
        pid,
        "--key",
        str(s.key),
        "--passphrase-file",
        str(bad),
        expect="Wrong passphrase",
        actor="Jane Head",
    )
    rsa = generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(HEAD_PW.encode()),
    )
    (s.ws.dir / "rsa.pem").write_bytes(rsa)
    good = s.ws.write("good.pw", HEAD_PW)
    _refused(
        s,
        "post",
        "approve",
        pid,
        "--key",
        str(s.ws.dir / "rsa.pem"),
        "--passphrase-file",
        str(good),
        expect="not an Ed25519 key",
        actor="Jane Head",
    )
    (s.ws.dir / "plain.txt").write_text("hello")
    _refused(
        s,
        "post",
        "approve",
        pid,
        "--key",
        str(s.ws.dir / "plain.txt"),
        "--passphrase-file",
        str(good),
        expect="not an encrypted private key",
        actor="Jane Head",
    )


def test_corrupt_oversize_and_non_image_media(s: Seeded) -> None:
    good = photo(s.ws.dir / "ok.jpg")
    broken = s.ws.dir / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:200])
    _refused(s, *_draft("--media", str(good), "--media", str(broken)), expect="broken.jpg is not a readable")
    (s.ws.dir / "notes.jpg").write_text("these are my notes")
    _refused(s, *_draft("--media", str(s.ws.dir / "notes.jpg")), expect="not a readable JPEG or PNG")
    gif = s.ws.dir / "anim.gif"
    from PIL import Image

    Image.new("RGB", (10, 10)).save(gif, "GIF")
    _refused(s, *_draft("--media", str(gif)), expect="only JPEG and PNG")
    big = s.ws.dir / "big.jpg"
    big.write_bytes(b"\xff" * (15 * 1024 * 1024 + 1))
    _refused(s, *_draft("--media", str(big)), expect="over the 15,728,640-byte limit")
    _refused(s, *_draft("--media", str(s.ws.dir / "missing.jpg")), expect="No media file")


def test_text_file_that_is_not_utf8(s: Seeded) -> None:
    (s.ws.dir / "latin1.txt").write_bytes("Caf\xe9 morning".encode("latin-1"))
    _refused(
        s,
        "post",
        "draft",
        "--text-file",
        str(s.ws.dir / "latin1.txt"),
        "--account",
        "stmarys-x",
        "--at",
        SOON,
        expect="is not UTF-8",
    )


def test_cancel_twice(s: Seeded) -> None:
    pid = s.draft("Assembly")
    s.ws.ok("post", "cancel", pid)
    _refused(s, "post", "cancel", pid, expect="is cancelled")


def test_approving_a_cancelled_post(s: Seeded) -> None:
    pid = s.draft("Assembly")
    s.ws.ok("post", "cancel", pid)
    good = s.ws.write("good.pw", HEAD_PW)
    r = s.ws.run("post", "approve", pid, "--key", str(s.key), "--passphrase-file", str(good), actor="Jane Head")
    assert r.code != 0 and "only a draft can be approved" in r.err


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("[publisher\ndata_dir = 1\n", "not valid TOML"),
        (
            '# comment\n\n[publisher]\ntimezone = "Mars/Olympus"\n',
            ":4: publisher.timezone 'Mars/Olympus' is not a known",
        ),
        (
            '[[schools]]\nid = "a"\n[[accounts]]\nname = "n"\nschool = "a"\nplatform = "myspace"\n',
            ":6: accounts.platform 'myspace' must be one of",
        ),
        ('[policy]\nmax_media_bytes = "big"\n', ":2: policy.max_media_bytes must be int"),
    ],
)
def test_malformed_config_names_the_key_and_line(tmp_path: Path, text: str, expect: str) -> None:
    ws = make_workspace(tmp_path / "ws")
    ws.config.write_text(text, encoding="utf-8")
    r = ws.run("subject", "list")
    assert r.code != 0
    assert expect in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1


def test_missing_config(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    ws.config.unlink()
    r = ws.run("subject", "list")
    assert r.code != 0 and "No config file" in r.err


def test_database_that_cannot_be_opened(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    r = ws.run("subject", "list")
    assert r.code != 0 and "run 'publisher init'" in r.err
    ws.config.write_text(
        ws.config.read_text().replace(
            "[publisher]\n", '[publisher]\ndatabase_url = "postgresql+psycopg://nobody@127.0.0.1:1/none"\n', 1
        )
    )
    r = ws.run("init")
    assert r.code != 0 and "cannot be opened" in r.err and len(r.err.strip().splitlines()) == 1
    ws2 = make_workspace(tmp_path / "ws2")
    ws2.ok("init")
    db = ws2.dir / "var" / "publisher.db"
    db.write_bytes(b"this is not a database" * 100)
    os.remove(db.with_name("publisher.db-wal")) if db.with_name("publisher.db-wal").exists() else None
    r = ws2.run("subject", "list")
    assert r.code != 0 and "cannot be opened" in r.err


def test_trust_init_twice_is_refused(s: Seeded) -> None:
    r = s.ws.run("trust", "init", "--passphrase-file", str(s.ws.dir / "root.pw"))
    assert r.code != 0 and "already pinned" in r.err


def test_short_passphrase_is_refused(workspace: Workspace) -> None:
    workspace.ok("init")
    pw = workspace.write("short.pw", "short")
    r = workspace.run("trust", "init", "--passphrase-file", str(pw))
    assert r.code != 0 and "shorter than 12" in r.err
    assert not (workspace.dir / "var" / "keys" / "trust-root.pem").exists()
