"""The approval path through the command line, on the embedded SQLite store."""

from __future__ import annotations

import sqlite3

import pytest
from PIL import Image

from publisher.errors import UsageError
from tests.conftest import Workspace

from .helpers import HEAD_PW, SOON, Seeded, next_clock_change, photo, seed


@pytest.fixture
def s(workspace: Workspace) -> Seeded:
    return seed(workspace)


def test_draft_screen_and_approve(s: Seeded) -> None:
    pid = s.draft(
        "Amelia ran brilliantly!", "--subject", f"{s.amelia}:image+name", "--media", str(photo(s.ws.dir / "a.jpg"))
    )
    assert s.codes(pid, "stmarys-x") == {"APPROVAL_MISSING"}
    out = s.approve(pid)
    assert "Approved by Jane Head" in out
    assert s.codes(pid, "stmarys-x") == set()
    assert s.codes(pid, "stmarys-facebook") == set()
    listed = s.ws.ok("post", "list", "--status", "approved")
    assert pid in listed


def test_approval_is_refused_while_a_blocking_finding_exists(s: Seeded) -> None:
    pid = s.draft("Well done Oliver!", "--subject", f"{s.oliver}:image")
    out = s.approve(pid)
    assert "Approval refused" in out and "CONSENT_MISSING" in out and "NAME_WITHOUT_CONSENT" in out
    assert s.show(pid)["approval"] is None


def test_the_author_cannot_approve_their_own_post(s: Seeded) -> None:
    r = s.ws.run(
        "post",
        "draft",
        "--text",
        "Assembly today",
        "--account",
        "stmarys-x",
        "--at",
        SOON,
        actor="Jane Head",
    )
    pid = r.out.split()[1]
    out = s.approve(pid, actor="Jane Head")
    assert "SELF_APPROVAL" in out
    assert s.show(pid)["approval"] is None


def test_text_edited_in_the_database_after_approval_is_a_mismatch(s: Seeded) -> None:
    pid = s.draft("Assembly today")
    s.approve(pid)
    con = sqlite3.connect(s.ws.dir / "var" / "publisher.db")
    con.execute("UPDATE posts SET text = 'Assembly today!' WHERE id = ?", (pid,))
    con.commit()
    con.close()
    assert s.codes(pid, "stmarys-x") == {"APPROVAL_CONTENT_MISMATCH"}


def test_a_media_byte_changed_on_disk_after_approval_is_a_mismatch(s: Seeded) -> None:
    pid = s.draft("Art week", "--media", str(photo(s.ws.dir / "a.jpg")))
    s.approve(pid)
    sha = s.show(pid)["media"][0]  # type: ignore[index]
    path = s.ws.dir / "var" / "media" / sha[:2] / f"{sha}.jpg"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "APPROVAL_CONTENT_MISMATCH" in s.codes(pid, "stmarys-x")


def test_media_is_stripped_and_the_device_recorded(s: Seeded) -> None:
    pid = s.draft(
        "Art week",
        "--media",
        str(photo(s.ws.dir / "a.jpg")),
        "--media",
        str(photo(s.ws.dir / "b.jpg", make="Canon", model="EOS R5", colour=(200, 10, 10))),
    )
    d = s.show(pid)
    for sha in d["media"]:  # type: ignore[attr-defined]
        path = s.ws.dir / "var" / "media" / sha[:2] / f"{sha}.jpg"
        with Image.open(path) as img:
            assert len(img.getexif()) == 0 and "exif" not in img.info
        assert b"Apple" not in path.read_bytes() and b"Canon" not in path.read_bytes()
    warnings = [f["message"] for f in d["accounts"]["stmarys-x"] if f["code"] == "MEDIA_DEVICE_UNKNOWN"]  # type: ignore[index]
    assert warnings == ["Image 2 comes from a device not approved by the DFO"]


def test_never_publish_child_with_consent_is_blocked(s: Seeded) -> None:
    pid = s.draft("Reading corner", "--subject", s.nadia, accounts=("stmarys-facebook",))
    assert "SUBJECT_NEVER_PUBLISH" in s.codes(pid, "stmarys-facebook")


def test_consent_withdrawn_after_approval_blocks(s: Seeded) -> None:
    pid = s.draft("Amelia's painting", "--subject", f"{s.amelia}:image+name")
    s.approve(pid)
    s.ws.ok("consent", "withdraw", s.amelia, "--platform", "x", "--scope", "name", actor="DFO")
    assert s.codes(pid, "stmarys-x") == {"CONSENT_WITHDRAWN", "NAME_WITHOUT_CONSENT"}
    assert s.codes(pid, "stmarys-facebook") == set()


def test_revoked_approver_blocks_an_approved_post(s: Seeded) -> None:
    pid = s.draft("Assembly today")
    s.approve(pid)
    rp = s.ws.dir / "root.pw"
    s.ws.ok("trust", "approver", "revoke", s.key_id, "--reason", "left", "--root-passphrase-file", str(rp), actor="DFO")
    assert s.codes(pid, "stmarys-x") == {"APPROVER_REVOKED"}
    assert "revoked" in s.ws.ok("trust", "approver", "list")


def test_certificate_forged_in_the_database_is_ignored_and_reported(s: Seeded) -> None:
    pid = s.draft("Assembly today")
    s.approve(pid)
    con = sqlite3.connect(s.ws.dir / "var" / "publisher.db")
    with pytest.raises(sqlite3.IntegrityError, match="insert-only"):
        con.execute("UPDATE approver_certificates SET name = 'x'")
    con.execute("DROP TRIGGER approver_certificates_no_update")  # an attacker who owns the file
    con.execute(
        "UPDATE approver_certificates SET body = CAST(replace(CAST(body AS TEXT), 'stmarys', 'stjohn') AS BLOB)"
    )
    con.commit()
    con.close()
    assert s.codes(pid, "stmarys-x") == {"APPROVER_NOT_CERTIFIED"}
    assert "IGNORED" in s.ws.ok("trust", "approver", "list")


def test_revocations_consent_and_never_publish_cannot_be_edited_away(s: Seeded) -> None:
    pid = s.draft("Assembly today")
    s.approve(pid)
    s.ws.ok(
        "trust",
        "approver",
        "revoke",
        s.key_id,
        "--reason",
        "left",
        "--root-passphrase-file",
        str(s.ws.dir / "root.pw"),
        actor="DFO",
    )
    con = sqlite3.connect(s.ws.dir / "var" / "publisher.db")
    for sql in (
        "DELETE FROM revocations",
        "DELETE FROM consent_events",
        "UPDATE consent_events SET action = 'grant'",
        "UPDATE subjects SET never_publish = 0",
    ):
        with pytest.raises(sqlite3.IntegrityError):
            con.execute(sql)
    con.close()
    assert s.codes(pid, "stmarys-x") == {"APPROVER_REVOKED"}


def test_approval_signs_only_what_was_shown(s: Seeded) -> None:
    from publisher import config as cfgmod
    from publisher.domain.manifest import manifest_sha256
    from publisher.service import Service

    pid = s.draft("Reviewed text")
    svc = Service.open(cfgmod.load(s.ws.config), "Jane Head")
    try:
        shown = manifest_sha256(svc.screen(pid).post)
        con = sqlite3.connect(s.ws.dir / "var" / "publisher.db")
        con.execute("UPDATE posts SET text = 'Swapped after review' WHERE id = ?", (pid,))
        con.commit()
        con.close()
        with pytest.raises(UsageError, match="changed while it was being reviewed"):
            svc.approve(pid, s.key, HEAD_PW, expected_manifest=shown)
    finally:
        svc.close()
    assert s.show(pid)["approval"] is None


def test_cancelled_post(s: Seeded) -> None:
    pid = s.draft("Assembly today")
    s.approve(pid)
    s.ws.ok("post", "cancel", pid)
    assert "POST_CANCELLED" in s.codes(pid, "stmarys-x")


def test_consent_is_a_history_of_events(s: Seeded) -> None:
    s.ws.ok("consent", "withdraw", s.oliver, "--platform", "facebook", "--scope", "image", actor="DFO")
    s.ws.ok(
        "consent",
        "grant",
        s.oliver,
        "--platform",
        "facebook",
        "--scope",
        "image",
        "--evidence",
        "SMA-2",
        "--expires",
        "2030-08-31",
        actor="DFO",
    )
    out = s.ws.ok("consent", "list", s.oliver)
    lines = [line for line in out.splitlines() if "facebook" in line]
    assert [line.split()[2] for line in lines] == ["grant", "withdraw", "grant"]
    assert "until 2030-08-31" in lines[-1]


def test_clock_change_times_at_drafting(s: Seeded) -> None:
    autumn, spring = next_clock_change(10), next_clock_change(3)
    r = s.ws.run("post", "draft", "--text", "x", "--account", "stmarys-x", "--at", f"{autumn} 01:30")
    assert r.code != 0 and "happens twice" in r.err
    r = s.ws.run("post", "draft", "--text", "x", "--account", "stmarys-x", "--at", f"{spring} 01:30")
    assert r.code != 0 and "does not exist" in r.err
    pid = s.draft("x", at=f"{spring} 09:00")
    assert s.show(pid)["scheduled_at"] == f"{spring}T08:00:00+00:00"


def test_the_log_records_the_path_without_names_in_clear(s: Seeded) -> None:
    pid = s.draft("Amelia's painting", "--subject", f"{s.amelia}:image+name")
    s.approve(pid)
    con = sqlite3.connect(s.ws.dir / "var" / "publisher.db")
    rows = con.execute("SELECT kind, body FROM log_entries ORDER BY seq").fetchall()
    con.close()
    kinds = [k for k, _ in rows]
    assert kinds.count("consent_granted") == 8 and kinds.count("consent_withdrawn") == 0
    assert kinds.count("approver_certified") == 1 and kinds[-1] == "approval_recorded"
    assert "subject_never_publish" in kinds
    blob = b"".join(bytes(b) for _, b in rows)
    for name in (b"Amelia", b"Millie", b"Oliver", b"Nadia", b"painting", b"SMA-2026"):
        assert name not in blob
    assert pid.encode() in blob
