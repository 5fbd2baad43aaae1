"""Subject access requests: the pack is complete for its subject and holds nothing of anyone
else; its proofs verify offline; its HTML renders; erasure leaves nothing; bad input is refused."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from publisher.sar.schema import SCHEMA
from tests.conftest import Workspace, make_workspace

from .helpers import Seeded, dump_sqlite, photo, seed
from .live import block, fast, go_live


@dataclass
class History:
    s: Seeded
    zara: str
    posts: dict[str, str]
    packs: dict[str, Path]

    def doc(self, who: str) -> dict:  # type: ignore[type-arg]
        return dict(json.loads((self.packs[who] / "sar.json").read_text(encoding="utf-8")))


def _post(s: Seeded, text: str, accounts: tuple[str, ...], colour: int, *subjects: str) -> str:
    extra = [a for sub in subjects for a in ("--subject", sub)]
    media = str(photo(s.ws.dir / f"p{colour}.jpg", colour=(colour, 80, 120)))
    pid = s.draft(text, *extra, "--media", media, accounts=accounts)
    assert "Approved by" in s.approve(pid), pid
    return pid


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> History:
    """Published, blocked, taken-down and erased posts; Amelia and Oliver share one."""
    ws = make_workspace(tmp_path_factory.mktemp("sar") / "ws")
    s = seed(ws)
    fast(ws)
    ws.ok("consent", "grant", s.oliver, "--platform", "facebook", "--scope", "name", "--evidence", "SMA-2", actor="DFO")
    fb, x = ("stmarys-facebook",), ("stmarys-x", "stmarys-facebook")
    p = {
        "shared": _post(s, "Amelia and Oliver won the relay!", fb, 10, f"{s.amelia}:image+name", f"{s.oliver}:image+name"),
        "taken": _post(s, "Amelia's painting", x, 20, f"{s.amelia}:image+name"),
        "blocked": _post(s, "Reading week", fb, 30, f"{s.amelia}:image"),
        "his": _post(s, "Football team", fb, 40, f"{s.oliver}:image"),
    }  # fmt: skip
    zara = ws.ok("subject", "add", "--name", "Zara Ahmed", "--alias", "Zee", actor="DFO").split()[1]
    ws.ok("consent", "grant", zara, "--platform", "facebook", "--scope", "image", "--evidence", "SMA-3", actor="DFO")
    p["erased"] = _post(s, "Class photo", fb, 50, f"{s.amelia}:image", f"{zara}:image")
    for key in ("shared", "taken", "his", "erased"):
        go_live(ws, p[key])
    ws.ok("takedown", p["taken"], "--account", "stmarys-x", "--reason", "parent asked", "--requested-by", "Mrs Jones")
    ws.ok("pause", "--reason", "checking photos", actor="Jane Head")
    assert "PUBLISHING_PAUSED" in block(ws, p["blocked"], "stmarys-facebook")
    ws.ok("resume", actor="Jane Head")
    ws.ok("subject", "erase", zara, actor="DFO")
    packs = {}
    for who, sid in (("amelia", s.amelia), ("oliver", s.oliver), ("zara", zara)):
        packs[who] = ws.dir / f"pack-{who}"
        ws.ok("sar", "export", sid, "--out", str(packs[who]), actor="DPO")
    return History(s, zara, p, packs)


def _texts(pack: Path) -> dict[str, bytes]:
    """Every file's bytes; a proof's logged entry (base64 in its extra line) is decoded too."""
    out = {}
    for path in sorted(pack.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".tlog-proof":
                extra = data.decode().split("\n")[1]
                assert extra.startswith("extra ")
                data = base64.b64decode(extra[6:])
            elif path.parent.name == "media":
                continue
            out[str(path.relative_to(pack))] = data
    return out


def test_every_item_appears_for_the_right_subject_and_nothing_of_the_other(h: History) -> None:
    a, o, p = h.doc("amelia"), h.doc("oliver"), h.posts
    assert {x["id"] for x in a["posts"]} == {p["shared"], p["taken"], p["blocked"], p["erased"]}
    assert {x["id"] for x in o["posts"]} == {p["shared"], p["his"]}
    by_id = {x["id"]: x for x in a["posts"]}
    taken = {d["account"]: d for d in by_id[p["taken"]]["deliveries"]}
    assert taken["stmarys-x"]["status"] == "taken_down" and taken["stmarys-x"]["taken_down_at"]
    assert taken["stmarys-facebook"]["status"] == "live" and taken["stmarys-facebook"]["url"].startswith("https://")
    assert taken["stmarys-facebook"]["consent_relied_on"][0]["evidence"] == "SMA-2026-001"
    assert by_id[p["taken"]]["approval"]["approver"] == "Jane Head"
    blocked = by_id[p["blocked"]]["deliveries"][0]
    assert blocked["status"] == "blocked" and "PUBLISHING_PAUSED" in {f["code"] for f in blocked["findings"]}
    shared = by_id[p["shared"]]
    assert shared["text"] == "Amelia and [another person] won the relay!" and shared["text_redacted"]
    assert all(m["redaction_review"] and m["others_appear"] for m in shared["media"])
    assert all(m["redaction_review"] for m in by_id[p["erased"]]["media"])
    assert not any(m["redaction_review"] for m in by_id[p["taken"]]["media"])
    kinds = {e["kind"] for e in a["log"]["entries"]}
    # the blocked publish is in the register; its log entry names only subjects with findings (see report)
    assert {"approval_recorded", "post_published", "takedown_requested", "taken_down"} <= kinds
    assert a["consent_history"] and all(c["platform"] for c in a["consent_history"])
    others = {
        "amelia": [b"Oliver", b"Smith", b"Olly", b"Zara", b"Ahmed", b"Zee", h.s.oliver.encode(), h.zara.encode()],
        "oliver": [b"Amelia", b"Jones", b"Millie", b"Zara", h.s.amelia.encode()],
    }
    for who, banned in others.items():
        for name, data in _texts(h.packs[who]).items():
            for word in banned:
                assert word not in data, f"{word!r} in {who}'s {name}"


def test_the_pack_holds_the_exact_published_bytes_and_matches_its_schema(h: History) -> None:
    pack = h.packs["amelia"]
    doc = h.doc("amelia")
    jsonschema.validate(doc, SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert json.loads((pack / "sar.schema.json").read_text()) == SCHEMA
    uploaded = h.s.ws.dir / "var" / "sandbox" / "media"
    for post in doc["posts"]:
        for item in post["media"]:
            data = (pack / item["file"]).read_bytes()
            if any(d["published_at"] for d in post["deliveries"]):
                assert (uploaded / item["sha256"]).read_bytes() == data  # what the platform received
    assert len(list((pack / "proofs").glob("*.tlog-proof"))) == len(doc["log"]["entries"])
    answered = json.loads(h.s.ws.ok("log", "show", "--kind", "sar_answered", "--json"))
    assert len(answered) == 3 and all(e["body"]["actor"] == "DPO" for e in answered)
    assert "Amelia" not in json.dumps(answered) and answered[0]["body"]["subject"].startswith("subj:")


def _publisher(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("publisher")
    cmd = [exe] if exe else [sys.executable, "-c", "import sys; from publisher.cli import main; sys.exit(main())"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_proofs_verify_elsewhere_with_only_the_pack_and_the_log_key(h: History, tmp_path: Path) -> None:
    vkey = next(line.split('"')[1] for line in h.s.ws.config.read_text().splitlines() if line.startswith("vkey = "))
    elsewhere = tmp_path / "another-machine"
    shutil.copytree(h.packs["amelia"] / "proofs", elsewhere / "proofs")
    files = sorted(p.name for p in (elsewhere / "proofs").glob("*.tlog-proof"))
    assert vkey in (elsewhere / "proofs" / "VERIFY.txt").read_text()
    r = _publisher("log", "verify-proof", *files, "--vkey", vkey, cwd=elsewhere / "proofs")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("OK ") == len(files) == len(h.doc("amelia")["log"]["entries"])
    bad = elsewhere / "proofs" / files[0]
    lines = bad.read_text().split("\n")
    entry = bytearray(base64.b64decode(lines[1][6:]))
    entry[10] ^= 1
    lines[1] = "extra " + base64.b64encode(bytes(entry)).decode()
    bad.write_text("\n".join(lines))
    r = _publisher("log", "verify-proof", files[0], "--vkey", vkey, cwd=elsewhere / "proofs")
    assert r.returncode != 0 and "does NOT verify" in r.stderr


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.sections: list[str] = []
        self.tags: set[str] = set()
        self.name = ""
        self._in_name = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "img":
            self.images.append(a["src"] or "")
        if tag == "section":
            self.sections.append(a["id"] or "")
        self._in_name = a.get("id") == "subject-name"

    def handle_data(self, data: str) -> None:
        if self._in_name:
            self.name += data


def test_the_html_pack_shows_the_subject_each_post_and_each_image(h: History, tmp_path: Path) -> None:
    pack, doc = h.packs["amelia"], h.doc("amelia")
    page = _Page()
    page.feed((pack / "index.html").read_text(encoding="utf-8"))
    assert page.name == "Amelia Jones"
    assert page.sections == [p["id"] for p in doc["posts"]]
    files = [m["file"] for p in doc["posts"] for m in p["media"]]
    assert page.images == files and all((pack / f).is_file() for f in files)
    assert not {"script", "link", "iframe"} & page.tags
    html_text = (pack / "index.html").read_text()
    for needle in ("Right to complain to the ICO", "ico.org.uk", "Approved by Jane Head", "taken down", "VERIFY.txt"):
        assert needle.lower() in html_text.lower(), needle
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: apt-get install -y chromium")
        pytest.skip("chromium not installed")
    png = Path(os.environ.get("SAR_PNG", tmp_path / "pack.png"))
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'prof'}",
         "--window-size=1000,4000", f"--screenshot={png}", (pack / "index.html").as_uri()],
        capture_output=True, timeout=90, check=False,
    )  # fmt: skip
    from PIL import Image

    with Image.open(png) as shot:
        assert shot.size == (1000, 4000)
        colours = shot.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 50  # text and photos, not a blank page
        assert png.stat().st_size > 20_000


def test_after_erasure_the_sar_has_nothing_and_the_log_still_verifies(h: History) -> None:
    z = h.doc("zara")
    assert z["subject"]["erased"] and z["subject"]["name"] == ""
    assert z["posts"] == [] and z["log"]["entries"] == [] and z["consent_history"] == []
    assert not list((h.packs["zara"] / "media").glob("*")) if (h.packs["zara"] / "media").exists() else True
    for data in _texts(h.packs["zara"]).values():
        assert b"Zara" not in data and b"Ahmed" not in data
    r = h.s.ws.run("log", "verify")
    assert r.code == 0 and r.out.startswith("OK:"), r.err
    assert h.s.ws.ok("log", "verify", "--processes", "2") == r.out  # a worker process: the same result
    bad = h.s.ws.run("log", "verify", "--processes", "0")
    assert bad.code == 2 and "--processes" in bad.err and "0 is not in the range 1<=x<=8" in bad.err
    erased_post = next(p for p in h.doc("amelia")["posts"] if p["id"] == h.posts["erased"])
    assert erased_post["others_featured"] == 1
    theirs = [e for e in h.doc("amelia")["log"]["entries"] if e["details"].get("post") == h.posts["erased"]]
    assert theirs and all(e["about_you"] is not None for e in theirs)  # still decrypts for Amelia
    assert "[erased]" in h.s.ws.ok("subject", "list")


# -- requests and bad input ------------------------------------------------------------------
@pytest.fixture
def s(workspace: Workspace) -> Seeded:
    return seed(workspace)


def test_open_list_and_extend_requests(s: Seeded) -> None:
    today = datetime.now(ZoneInfo("Europe/London")).date()
    soon = today - timedelta(days=27)
    out = s.ws.ok("sar", "open", "amelia", "--received", soon.isoformat(), "--requester", "Mrs Jones (mother)")
    rid = out.split()[1]
    late = s.ws.ok("sar", "open", "Olly", "--received", (today - timedelta(days=70)).isoformat(), "--requester", "Dad")
    listed = s.ws.ok("sar", "list")
    assert "DUE SOON" in listed and "OVERDUE" in listed and late.split()[1] in listed
    ext = s.ws.ok("sar", "extend", rid, "--months", "2", "--reason", "many posts across three platforms")
    from publisher.sar.deadline import due_date

    assert f"now due {due_date(soon, 2)}" in ext
    data = {d["id"]: d for d in json.loads(s.ws.ok("sar", "list", "--json"))}
    assert data[rid]["extension_months"] == 2 and data[rid]["urgency"] == "on track"
    r = s.ws.run("sar", "extend", rid, "--months", "1", "--reason", "more")
    assert r.code == 1 and "at most 2" in r.err


def test_bad_sar_input_is_one_clear_line_and_nothing_is_written(s: Seeded) -> None:
    s.ws.ok("subject", "add", "--name", "Amelia Brown", actor="DFO")
    full = s.ws.dir / "full"
    full.mkdir()
    (full / "letter.txt").write_text("x")
    db = s.ws.dir / "var" / "publisher.db"
    cases = [
        (("sar", "export", "S-NOPE", "--out", str(s.ws.dir / "a")), "No subject"),
        (("sar", "export", "Amelia", "--out", str(s.ws.dir / "a")), "matches 2 subjects"),
        (("sar", "export", s.amelia, "--out", str(full)), "not empty"),
        (("sar", "open", "Nobody Atall", "--received", "2026-01-05", "--requester", "x"), "No subject"),
        (("sar", "open", s.amelia, "--received", "2999-01-05", "--requester", "x"), "in the future"),
        (("sar", "extend", "R-NOPE", "--reason", "x"), "No subject access request"),
    ]
    for args, expect in cases:
        before = dump_sqlite(db)
        r = s.ws.run(*args)
        assert r.code != 0 and expect in r.err and len(r.err.strip().splitlines()) == 1, (args, r.err)
        assert "Amelia" not in r.err  # a child's name is never in a message
        assert dump_sqlite(db) == before
    assert not (s.ws.dir / "a").exists() and os.listdir(full) == ["letter.txt"]
    assert not [p for p in s.ws.dir.iterdir() if p.name.startswith(".sar-")]


def test_a_post_that_names_the_child_without_featuring_them_is_in_their_pack(workspace: Workspace) -> None:
    s = seed(workspace)
    fast(workspace)
    workspace.ok(
        "consent", "grant", s.oliver, "--platform", "facebook", "--scope", "name", "--evidence", "SMA-2", actor="DFO"
    )
    pid = _post(s, "Well done Olly in the choir", ("stmarys-facebook",), 50, f"{s.amelia}:image")
    go_live(workspace, pid)
    workspace.ok("sar", "export", s.oliver, "--out", str(workspace.dir / "pack"))
    doc = json.loads((workspace.dir / "pack" / "sar.json").read_text(encoding="utf-8"))
    post = next(p for p in doc["posts"] if p["id"] == pid)
    assert post["featured_as"] == ["name"]
    assert any(e["kind"] == "post_published" for e in doc["log"]["entries"])
