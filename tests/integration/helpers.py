"""A seeded workspace: Trust root, one headteacher, three pupils with different consents."""

from __future__ import annotations

import io
import json
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from PIL import Image

from tests.conftest import Workspace

ROOT_PW = "root passphrase of the DFO 7f3a"
# The CLI runs on the real clock: posts are due a few weeks ahead, consents outlast them.
TODAY = datetime.now(ZoneInfo("Europe/London")).date()
SOON = f"{TODAY + timedelta(days=40):%Y-%m-%d} 10:00"
UNTIL = f"{TODAY + timedelta(days=730):%Y-%m-%d}"


def last_sunday(year: int, month: int) -> date:
    day = date(year, month + 1, 1) - timedelta(days=1) if month < 12 else date(year, 12, 31)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def next_clock_change(month: int) -> date:
    """The next last Sunday of March (3) or October (10), when the UK clocks change."""
    year = TODAY.year
    while last_sunday(year, month) <= TODAY + timedelta(days=1):
        year += 1
    return last_sunday(year, month)


HEAD_PW = "headteacher passphrase 91c2"


def photo(
    path: Path,
    size: tuple[int, int] = (1080, 1080),
    make: str = "Apple",
    model: str = "iPhone 14",
    fmt: str = "JPEG",
    colour: tuple[int, int, int] = (30, 120, 200),
) -> Path:
    img = Image.new("RGB", size, colour)
    exif = Image.Exif()
    if make:
        exif[0x010F], exif[0x0110] = make, model
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 12.0), 3: "W", 4: (0.0, 7.0, 40.0)}  # GPS
    buf = io.BytesIO()
    img.save(buf, fmt, exif=exif.tobytes())
    path.write_bytes(buf.getvalue())
    return path


@dataclass
class Seeded:
    ws: Workspace
    key: Path
    key_id: str
    amelia: str
    oliver: str
    nadia: str

    def draft(
        self,
        text: str = "Sports day fun!",
        *extra: str,
        at: str = SOON,
        accounts: tuple[str, ...] = ("stmarys-x", "stmarys-facebook"),
    ) -> str:
        args = ["post", "draft", "--text", text, "--at", at, *extra]
        for a in accounts:
            args += ["--account", a]
        out = self.ws.ok(*args)
        return out.split()[1]

    def approve(self, post_id: str, actor: str = "Jane Head") -> str:
        pw = self.ws.write("head.pw", HEAD_PW)
        r = self.ws.run("post", "approve", post_id, "--key", str(self.key), "--passphrase-file", str(pw), actor=actor)
        return r.out + r.err if r.code else r.out

    def show(self, post_id: str) -> dict[str, object]:
        return dict(json.loads(self.ws.ok("post", "show", post_id, "--json")))

    def codes(self, post_id: str, account: str) -> set[str]:
        d = self.show(post_id)
        findings = d["accounts"][account]  # type: ignore[index]
        return {f["code"] for f in findings if f["severity"] == "blocking"}


def seed(ws: Workspace) -> Seeded:
    ws.ok("init")
    rp = ws.write("root.pw", ROOT_PW)
    hp = ws.write("head.pw", HEAD_PW)
    ws.ok("trust", "init", "--passphrase-file", str(rp), actor="DFO")
    out = ws.ok(
        "trust",
        "approver",
        "add",
        "--name",
        "Jane Head",
        "--role",
        "headteacher",
        "--school",
        "stmarys",
        "--root-passphrase-file",
        str(rp),
        "--passphrase-file",
        str(hp),
        actor="DFO",
    )
    key_id = out.split(" as key ")[1].split(";")[0]
    key = Path(out.rsplit(" at ", 1)[1].strip())
    ids = []
    for name, alias in (("Amelia Jones", "Millie"), ("Oliver Smith", "Olly"), ("Nadia Khan", "")):
        args = ["subject", "add", "--name", name] + (["--alias", alias] if alias else [])
        ids.append(ws.ok(*args, actor="DFO").split()[1])
    amelia, oliver, nadia = ids
    for platform in ("x", "facebook", "instagram"):
        for scope in ("image", "name"):
            ws.ok(
                "consent",
                "grant",
                amelia,
                "--platform",
                platform,
                "--scope",
                scope,
                "--evidence",
                "SMA-2026-001",
                "--expires",
                UNTIL,
                actor="DFO",
            )
    ws.ok(
        "consent",
        "grant",
        oliver,
        "--platform",
        "facebook",
        "--scope",
        "image",
        "--evidence",
        "SMA-2026-002",
        "--expires",
        UNTIL,
        actor="DFO",
    )
    ws.ok(
        "consent",
        "grant",
        nadia,
        "--platform",
        "facebook",
        "--scope",
        "image",
        "--evidence",
        "SMA-2026-003",
        "--expires",
        UNTIL,
        actor="DFO",
    )
    ws.ok("subject", "never-publish", nadia, "--reason", "court order", actor="DFO")
    ws.ok("device", "add", "--make", "Apple", "--model", "iPhone 14", actor="DFO")
    return Seeded(ws, key, key_id, amelia, oliver, nadia)


def dump_sqlite(db: Path) -> list[tuple[object, ...]]:
    """Every row of every table, for 'nothing changed' checks."""
    con = sqlite3.connect(db)
    try:
        rows: list[tuple[object, ...]] = []
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for t in tables:
            rows += [(t, *r) for r in con.execute(f'SELECT * FROM "{t}"')]  # noqa: S608 - names from the catalogue
        return rows
    finally:
        con.close()
