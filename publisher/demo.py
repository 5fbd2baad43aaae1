"""`publisher demo`: the whole path on the sandbox emulators, in a fresh folder, told as a story.

Trust root, an approver and an author; three children (one with consent everywhere, one
Facebook-only, one on the never-publish list); three posts screened, approved and due within
seconds; a consent withdrawn after approval; the daemon until everything is settled; what is
live on each emulated platform (read back from the emulators), what was blocked and why, the
log verified. No network, no setup, no master-key variable (a key file is written). It uses
the Service API only, like the command line.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from publisher import config as cfgmod
from publisher.daemon import Daemon
from publisher.domain.limits import Platform
from publisher.domain.model import Role, Scope, SubjectKind
from publisher.queue.settings import QueueSettings
from publisher.queue.status import queue_status
from publisher.service import ApprovalRefused, Service

ROOT_PW = "demo Trust root passphrase"
HEAD_PW = "demo headteacher passphrase"
LEAD_SECONDS = 4

CONFIG = """# trust-publisher demo: SQLite and the sandbox emulators, in this folder.
[publisher]
data_dir = "var"
timezone = "Europe/London"

[trust]
root_key_file = "keys/trust-root.pem"

[log]
origin = "trust-publisher.invalid/demo/log"

[daemon]
timeout = 5.0
lease_seconds = 60.0
backoff_base = 0.5
instagram_pause = 0.0
instagram_request_delay = 0.0

[[schools]]
id = "stmarys"
name = "St Mary's Primary School"
""" + "".join(
    f'\n[[accounts]]\nname = "stmarys-{p}"\nschool = "stmarys"\nplatform = "{p}"\nhandle = "stmarys-{p}"\nsandbox = true\n'
    for p in ("x", "facebook", "instagram")
)


@dataclass
class DemoReport:
    folder: Path
    story: list[str] = field(default_factory=list)
    live: dict[str, list[str]] = field(default_factory=dict)  # account -> texts live on the emulator
    blocked: dict[str, list[str]] = field(default_factory=dict)  # "post on account" -> codes
    refused: list[str] = field(default_factory=list)  # codes of the approval that was refused
    log_size: int = 0
    verified: bool = False

    def say(self, line: str = "") -> None:
        self.story.append(line)


def _photo(colour: tuple[int, int, int]) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (1080, 1080), colour)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 14"
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def _setup(folder: Path, r: DemoReport) -> tuple[Service, Path]:
    path = folder / "config.toml"
    path.write_text(CONFIG, encoding="utf-8")
    cfg = cfgmod.load(path)
    for sub in ("media", "keys"):
        (cfg.data_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    svc = Service.open(cfg, "DFO", migrate=True)
    svc.setup()
    svc.trust_init(ROOT_PW)
    svc.close()
    dfo = Service.open(cfgmod.load(path), "DFO")
    kid, key = dfo.approver_add("Jane Head", Role.HEADTEACHER, ["stmarys"], ROOT_PW, HEAD_PW)
    dfo.device_add("Apple", "iPhone 14")
    r.say(f"1. The DFO made the Trust root key and certified Jane Head (headteacher) as approver key {kid}.")
    return dfo, key


def _children(dfo: Service, r: DemoReport) -> tuple[str, str, str]:
    amelia = dfo.subject_add("Amelia Jones", SubjectKind.PUPIL)
    oliver = dfo.subject_add("Oliver Smith", SubjectKind.PUPIL)
    nadia = dfo.subject_add("Nadia Khan", SubjectKind.PUPIL)
    for platform in Platform:
        for scope in Scope:
            dfo.consent_grant(amelia, platform, scope, "SMA-DEMO-001")
    dfo.consent_grant(oliver, Platform.FACEBOOK, Scope.IMAGE, "SMA-DEMO-002")
    dfo.consent_grant(nadia, Platform.FACEBOOK, Scope.IMAGE, "SMA-DEMO-003")
    dfo.never_publish(nadia, "court order")
    r.say(
        f"2. Three pupils: {amelia} (photo and name consent everywhere), {oliver} (photo, Facebook only), "
        f"{nadia} (never publish: court order)."
    )
    return amelia, oliver, nadia


def _posts(dfo: Service, key: Path, kids: tuple[str, str, str], folder: Path, r: DemoReport) -> datetime:
    amelia, oliver, nadia = kids
    author = Service(dfo.config, dfo.engine, "Sam Teacher")
    head = Service(dfo.config, dfo.engine, "Jane Head")
    tz = ZoneInfo(dfo.config.timezone)
    at = (dfo.now() + timedelta(seconds=LEAD_SECONDS)).astimezone(tz)
    when = at.strftime("%Y-%m-%d %H:%M:%S")
    photos = []
    for i, colour in enumerate(((200, 60, 40), (40, 160, 90), (60, 90, 200), (120, 120, 120))):
        photos.append(folder / f"photo{i + 1}.jpg")
        photos[-1].write_bytes(_photo(colour))
    plan = [
        ("Sports day! Amelia won the sack race.", ["x", "facebook", "instagram"], photos[0], f"{amelia}:image+name"),
        ("Year 2 at the farm today.", ["facebook"], photos[1], f"{oliver}:image"),
        ("Art week: look at these paintings!", ["x", "instagram"], photos[2], f"{amelia}:image"),
    ]
    for n, (text, accounts, photo, featured) in enumerate(plan, start=1):
        pid = author.post_draft(text, [f"stmarys-{a}" for a in accounts], when, [photo], [featured])
        head.approve(pid, key, HEAD_PW)
        r.say(
            f"3.{n} Sam Teacher drafted {pid} ({', '.join(accounts)}, due {when}); Jane Head screened and approved it."
        )
    pid = author.post_draft("Choir practice", ["stmarys-facebook"], when, [photos[3]], [f"{nadia}:image"])
    try:
        head.approve(pid, key, HEAD_PW)
    except ApprovalRefused as exc:
        r.refused = sorted({f.code for f in exc.findings})
        r.say(f"3.4 A fourth post ({pid}) featuring {nadia} could not be approved: {', '.join(r.refused)}.")
    dfo.consent_withdraw(oliver, Platform.FACEBOOK, Scope.IMAGE, "parent's e-mail")
    r.say(f"4. After approval, {oliver}'s parent withdrew Facebook photo consent.")
    return at


def _tell(dfo: Service, daemon: Daemon, r: DemoReport) -> None:
    r.say("6. What went live, read back from the emulators:")
    sandbox = daemon.platforms.sandbox
    for account in dfo.config.accounts:
        posts = sandbox.live(account.platform.value, daemon.platforms.sandbox_account_id(account.name))
        r.live[account.name] = [str(p["text"]) for p in posts]
        r.say(f"   {account.name}: " + ("; ".join(f'"{t}"' for t in r.live[account.name]) or "nothing"))
    status = queue_status(dfo)
    r.say("7. Blocked at post time:")
    for d in status["blocked"]:
        codes = [f["code"] for f in d["findings"]]
        r.blocked[f"{d['post']} on {d['account']}"] = codes
        r.say(f"   {d['post']} on {d['account']}: " + "; ".join(f"{f['code']} ({f['message']})" for f in d["findings"]))
    with dfo.engine.connect() as conn:
        report = dfo.audit.ledger.verify(conn)
    r.log_size, r.verified = report.size, True
    r.say(
        f"8. log verify: OK, {report.size} entries, {report.checkpoints_verified} signed checkpoints, "
        f"root {report.root_hash.hex()[:16]}..."
    )


def run_demo(folder: Path | None = None, timeout: float = 45.0) -> DemoReport:
    """Run the demo in `folder` (a new temporary folder by default); returns what happened."""
    folder = Path(tempfile.mkdtemp(prefix="publisher-demo-")) if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        from publisher.errors import UsageError

        raise UsageError(f"{folder} is not empty: give a new or empty folder for the demo")
    r = DemoReport(folder)
    r.say(f"trust-publisher demo in {folder}")
    dfo, key = _setup(folder, r)
    try:
        kids = _children(dfo, r)
        last_due = _posts(dfo, key, kids, folder, r)
        with Daemon(dfo, QueueSettings.load(dfo.config.path)) as daemon:
            left = daemon.drain(until=last_due, timeout=timeout)
            r.say(f"5. The daemon ran until every delivery was settled ({left} left).")
            _tell(dfo, daemon, r)
        r.say(
            f"9. Files: config {folder / 'config.toml'}, database and log {dfo.config.data_dir}, "
            f"emulator state {dfo.config.data_dir / 'sandbox'}."
        )
        r.say(f"   Try: publisher --config {folder / 'config.toml'} status")
    finally:
        dfo.close()
    return r
