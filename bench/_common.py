"""Shared set-up for the queue benchmarks (burst, steady, slow, memory).

* `SandboxProc`: the three platform emulators in their own process (`python bench/_common.py
  serve DIR`), so the code under test and the emulators do not share one GIL. In that process
  `SandboxState.save` is a no-op: the emulator normally rewrites and fsyncs its whole JSON file
  on every post (O(posts) per post), a cost no real platform has; with it, 10,000 posts would
  measure the emulator's file writes, not the publisher.
* `make_workspace`: a config.toml with N sandbox accounts, the database (SQLite or a fresh
  PostgreSQL schema), the vault and log keys, a Trust root, one certified approver, a stored
  photo, and each account's emulator credentials in the vault.
* `seed`: approved posts, one delivery each, written by a fast path that inserts the same rows
  `Service.approve` writes (PostRow, PostAccountRow, PostMediaRow, ApprovalRow with a PASETO
  token from `publisher.domain.approval.sign_approval` over the real manifest, DeliveryRow)
  and the same `approval_recorded` log entry through `Service.record`. Service.approve would
  decrypt the approver's key file (scrypt) and run the gate for every post; that is the
  approver's cost, not the daemon's, and is excluded from every timing.
* `start_daemon`: `publisher run` as a real process against the workspace.
* `LimitRun` / `RecipeRun`: the two baselines (plain thread pool; APScheduler 3 with a
  SQLAlchemyJobStore), publishing through the same connectors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import zip_longest
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROOT_PW = "bench root passphrase, long enough"
HEAD_PW = "bench head passphrase, long enough"
AUTHOR = "Sam Teacher"
LAUNCH = "import sys; from publisher.cli import main; sys.exit(main())"
ACTIVE = ("queued", "inflight", "reconcile")


def daemon_settings(sandbox_port: int, workers: int, **extra: float) -> dict[str, float]:
    """The [daemon] table: the defaults except the sandbox port, the pool size, no Instagram
    pauses (the emulator needs none) and a lease long enough for a slow run."""
    return {
        "workers": workers,
        "sandbox_port": sandbox_port,
        "instagram_pause": 0.0,
        "instagram_request_delay": 0.0,
        "timeout": 10.0,
        "lease_seconds": 60.0,
        **extra,
    }


def mix(count: int) -> list[tuple[str, str]]:
    """`count` accounts, a third on each platform (x first): name, platform."""
    platforms = ("x", "facebook", "instagram")
    return [(f"acct{i:03d}-{platforms[i % 3]}", platforms[i % 3]) for i in range(count)]


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# -- the emulators in their own process --------------------------------------------------------
class SandboxProc:
    """`with SandboxProc(dir) as sb:`; sb.port, sb.provision(accounts), sb.created(), sb.latency(s)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = int(self._read()["port"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox process exited")
        out: dict[str, Any] = json.loads(line)
        return out

    def call(self, cmd: str, **args: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        return self._read()["result"]

    def provision(self, accounts: Sequence[tuple[str, str]]) -> dict[str, dict[str, str]]:
        creds = self.call("provision", accounts=[[platform, name] for name, platform in accounts])
        return {name: c for (name, _), c in zip(accounts, creds, strict=True)}

    def created(self) -> int:
        return int(self.call("created"))

    def latency(self, seconds: float) -> None:
        self.call("latency", seconds=seconds)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.call("quit")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> SandboxProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(data_dir: Path) -> None:
    from publisher.sandbox import Sandbox
    from publisher.sandbox.state import SandboxState

    SandboxState.save = lambda self, platform: None  # type: ignore[method-assign]  # see module docstring
    sb = Sandbox(data_dir).start()
    out = sys.stdout
    out.write(json.dumps({"port": sb.port}) + "\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        result: Any = None
        if cmd == "provision":
            result = [sb.provision_account(platform, name) for platform, name in req["accounts"]]
        elif cmd == "created":
            result = sum(int(n) for em in sb.emulators.values() for n in em.state.get(em.platform)["created"].values())
        elif cmd == "latency":
            for platform in ("x", "facebook", "instagram"):
                sb.inject(platform, "*", "latency", rate=1.0, seconds=float(req["seconds"]))
        elif cmd == "quit":
            out.write(json.dumps({"result": None}) + "\n")
            out.flush()
            break
        out.write(json.dumps({"result": result}) + "\n")
        out.flush()
    sb.stop()


# -- the workspace ----------------------------------------------------------------------------
@dataclass
class Workspace:
    dir: Path
    svc: Any  # publisher.service.Service
    accounts: list[tuple[str, str]]
    approver: Any  # Ed25519PrivateKey
    key_id: str
    approver_public: bytes
    photo_sha: str
    photo: bytes
    schema: str = ""
    creds: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.dir / "config.toml"

    def close(self) -> None:
        self.svc.close()
        if self.schema:
            drop_schema(self.schema)


def pg_reachable() -> bool:
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except Exception as exc:
        print(f"note: PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__}); skipping it")
        return False


def new_schema() -> tuple[str, str]:
    import sqlalchemy as sa

    name = "bench_" + secrets.token_hex(5)
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    engine.dispose()
    return name, f"{PG_URL}?options=-csearch_path%3D{name}"


def drop_schema(name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()


def make_workspace(
    base: Path,
    accounts: Sequence[tuple[str, str]],
    sandbox: SandboxProc,
    workers: int,
    postgres: bool = False,
    daemon_extra: dict[str, float] | None = None,
) -> Workspace:
    from publisher import config as cfgmod
    from publisher.approvals import keys
    from publisher.domain import approval as ap
    from publisher.domain.model import Role
    from publisher.service import Service
    from publisher.store import db, repo
    from tests.contract.queue.world import config_text, jpeg  # the tests' workspace, shared

    base.mkdir(parents=True, exist_ok=True)
    schema, url = new_schema() if postgres else ("", "")
    path = base / "config.toml"
    daemon = daemon_settings(sandbox.port, workers, **(daemon_extra or {}))
    path.write_text(config_text(url, daemon, 1_000_000, accounts, origin="bench.invalid/log"), encoding="utf-8")
    cfg = cfgmod.load(path)
    for sub in ("media", "keys"):
        (cfg.data_dir / sub).mkdir(parents=True, exist_ok=True)
    first = Service.open(cfg, "DFO", migrate=True)
    first.setup()
    first.trust_init(ROOT_PW)
    first.close()
    svc = Service.open(cfgmod.load(path), "DFO")
    kid, key_path = svc.approver_add("Jane Head", Role.HEADTEACHER, ["stmarys"], ROOT_PW, HEAD_PW)
    svc.device_add("Apple", "iPhone 14")
    photo_path = base / "photo.jpg"
    photo_path.write_bytes(jpeg())
    author = Service(svc.config, svc.engine, AUTHOR, svc.now)
    when = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    draft = author.post_draft("The photo every benchmark post carries", [accounts[0][0]], when, [photo_path])
    with db.transaction(svc.engine) as s:
        media = repo.post_media(s, draft)[0]
        photo = repo.media_file(svc.config.media_dir, media).read_bytes()
        sha = media.sha256
    approver = keys.read_private_key(key_path, HEAD_PW)
    creds = sandbox.provision(accounts)
    vault = svc.vault()
    for name, _ in accounts:
        account = svc.config.account(name)
        vault.set(account.secret, json.dumps(creds[name]).encode("utf-8"))
    return Workspace(
        base, svc, list(accounts), approver, kid, ap.raw_public(approver.public_key()), sha, photo, schema, creds
    )


# -- seeding (fast path; see the module docstring) -------------------------------------------------
@dataclass(frozen=True)
class Seeded:
    post_id: str
    delivery_id: str
    account: str
    text: str
    token: str
    due: datetime


def seed(
    ws: Workspace, plan: Sequence[tuple[str, datetime]], window_hours: int = 12, batch: int = 500, write: bool = True
) -> list[Seeded]:
    """One approved post per (account, due time), exactly as Service.approve would store it.
    `write=False`: only make the posts and tokens (for the baselines, which have no store)."""
    from sqlalchemy import insert

    from publisher.domain import approval as ap
    from publisher.domain.manifest import manifest_sha256
    from publisher.domain.model import ApprovalClaims, MediaRef, Post
    from publisher.ledger import log as kinds
    from publisher.ledger.log import commit_text
    from publisher.service import new_id
    from publisher.store import db
    from publisher.store import models as m

    svc = ws.svc
    school = "stmarys"
    media = (MediaRef(ws.photo_sha, "image/jpeg", len(ws.photo), 640, 640),)
    out: list[Seeded] = []
    for first in range(0, len(plan), batch):
        posts, links, pmedia, approvals, deliveries, logs = [], [], [], [], [], []
        now = datetime.now(UTC)
        for i, (account, due) in enumerate(plan[first : first + batch], start=first):
            pid = new_id("P-")
            text = f"Sports day at St Mary's, photo {i} of the year ({secrets.token_hex(3)})"
            post = Post(pid, school, AUTHOR, text, media, (), (account,), due)
            naf = due + timedelta(hours=window_hours)
            claims = ApprovalClaims(
                pid, school, manifest_sha256(post), (account,), due, naf, naf, now, secrets.token_hex(16), ws.key_id
            )
            token = ap.sign_approval(ws.approver, claims)
            commitment = commit_text(text)
            posts.append(
                {
                    "id": pid,
                    "school_id": school,
                    "author": AUTHOR,
                    "text": text,
                    "scheduled_at": due,
                    "status": "approved",
                    "created_at": now,
                    "text_salt": commitment["salt"],
                }
            )
            links.append({"post_id": pid, "account": account})
            pmedia.append({"post_id": pid, "position": 0, "sha256": ws.photo_sha})
            approvals.append(
                {
                    "post_id": pid,
                    "token": token,
                    "jti": claims.jti,
                    "key_id": ws.key_id,
                    "approver": "Jane Head",
                    "manifest_sha256": claims.manifest_sha256,
                    "not_before": due,
                    "not_after": naf,
                    "expires": naf,
                    "approved_at": now,
                    "actor": "Jane Head",
                }
            )
            did = new_id("D-")
            deliveries.append(
                {
                    "id": did,
                    "post_id": pid,
                    "account": account,
                    "due_at": due,
                    "status": "queued",
                    "jti": claims.jti,
                    "attempts": 0,
                    "lease_owner": "",
                    "platform_id": "",
                    "url": "",
                    "last_error": "",
                    "findings": [],
                }
            )
            logs.append(
                {
                    "post": pid,
                    "jti": claims.jti,
                    "key_id": ws.key_id,
                    "approver": "Jane Head",
                    "manifest_sha256": claims.manifest_sha256,
                    "accounts": [account],
                    "not_before": due.isoformat(),
                    "not_after": naf.isoformat(),
                    "text_sha256": commitment["sha256"],
                    "media_sha256": [ws.photo_sha],
                    "actor": "Jane Head",
                }
            )
            out.append(Seeded(pid, did, account, text, token, due))
        if not write:
            continue
        with db.transaction(svc.engine) as s:
            s.execute(insert(m.PostRow), posts)
            s.execute(insert(m.PostAccountRow), links)
            s.execute(insert(m.PostMediaRow), pmedia)
            s.execute(insert(m.ApprovalRow), approvals)
            s.execute(insert(m.DeliveryRow), deliveries)
            for body in logs:
                svc.record(s, kinds.APPROVAL_RECORDED, body, {})
    return out


# -- the daemon as a process --------------------------------------------------------------------
def shift_due(ws: Workspace, delta: timedelta) -> None:
    """Move every queued delivery (and its post's scheduled time) `delta` later. The approvals
    were signed at seeding time, so their windows are open by then."""
    from sqlalchemy import select, update

    from publisher.store import db
    from publisher.store import models as m

    with db.transaction(ws.svc.engine) as s:
        rows = list(s.execute(select(m.DeliveryRow.id, m.DeliveryRow.post_id, m.DeliveryRow.due_at)))
        s.execute(update(m.DeliveryRow), [{"id": i, "due_at": due + delta} for i, _, due in rows])
        s.execute(update(m.PostRow), [{"id": p, "scheduled_at": due + delta} for _, p, due in rows])


def entry_point() -> str | None:
    """The `publisher` script installed beside this interpreter (not a version manager's shim,
    such as pyenv's, which is a shell script adding ~80 ms to every start), else the one on PATH."""
    beside = Path(sys.executable).with_name("publisher")
    return str(beside) if beside.is_file() else shutil.which("publisher")


def publisher_cmd() -> list[str]:
    found = entry_point()
    return [found] if found else [sys.executable, "-c", LAUNCH]


def start_daemon(ws: Workspace, log_name: str = "daemon.log") -> subprocess.Popen[bytes]:
    cmd = [*publisher_cmd(), "--config", str(ws.config_path), "--as", "daemon", "run", "--json-logs"]
    with open(ws.dir / log_name, "wb") as err:
        return subprocess.Popen(cmd, cwd=ws.dir, stdout=err, stderr=err)


def stop_daemon(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(5)
    return int(proc.returncode)


def active_count(ws: Workspace) -> int:
    from sqlalchemy import func, select

    from publisher.store import db
    from publisher.store import models as m

    with db.reading(ws.svc.engine) as s:
        q = select(func.count()).where(m.DeliveryRow.status.in_(ACTIVE))
        return int(s.scalar(q) or 0)


def wait_settled(ws: Workspace, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if active_count(ws) == 0:
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.25)
    return False


def run_until_settled(
    ws: Workspace, sb: SandboxProc, timeout: float, daemons: int = 1, cpu: CpuSampler | None = None
) -> tuple[bool, int, dict[str, int], list[tuple[datetime, datetime]], int]:
    """Run `publisher run` (`daemons` of them: PostgreSQL only) until nothing is left to do (or
    `timeout`), stop it; returns whether it settled, the worst exit code, the outcomes (see
    `outcomes`) and how many posts the emulators made. `cpu`: sampled meanwhile (the daemons)."""
    procs = [start_daemon(ws, "daemon.log" if i == 0 else f"daemon{i}.log") for i in range(daemons)]
    try:
        with cpu.sampling([p.pid for p in procs]) if cpu is not None else contextlib.nullcontext():
            settled = wait_settled(ws, timeout, procs[0])
    finally:
        codes = [stop_daemon(p) for p in procs]
    counts, times = outcomes(ws)
    return settled, max(codes, key=abs), counts, times, sb.created()


def process_cpu(pids: Sequence[int]) -> float:
    """User and system CPU seconds of these processes so far (Linux /proc; 0 elsewhere)."""
    tick, total = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100, 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone, or not Linux
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def postgres_cpu() -> float:
    """The CPU of every process named postgres on this machine (the server, its backends)."""
    pids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                pids.append(int(entry.name))
    return process_cpu(pids)


def machine_cpu() -> tuple[float, float]:
    """(busy, all) CPU time of the whole machine so far, in ticks summed over its cores (Linux
    /proc/stat; zeros elsewhere). Busy is everything but idle and iowait."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0, 0.0
    return float(sum(ticks) - ticks[3] - ticks[4]), float(sum(ticks))


@dataclass
class CpuSampler:
    """Every `period` seconds while sampling: the wall time, the watched processes' CPU and the
    machine's, so a benchmark can tell which bound it met over its busy window: the daemon's one
    interpreter (near a whole core, the machine not full) or the cores (the machine near 100%)."""

    period: float = 0.25
    samples: list[tuple[datetime, float, float, float]] = field(default_factory=list)

    @contextlib.contextmanager
    def sampling(self, pids: Sequence[int]) -> Iterator[None]:
        stop = threading.Event()

        def run() -> None:
            while True:
                self.samples.append((datetime.now(UTC), process_cpu(pids), *machine_cpu()))
                if stop.wait(self.period):
                    return

        thread = threading.Thread(target=run, name="cpu-sampler", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)

    def between(self, start: datetime, end: datetime) -> dict[str, float]:
        """Over [start, end] (widened to the samples around it): the watched processes' CPU in
        cores (1.0 = one core all the time) and the machine's busy share of all its cores, in %."""
        inside = [x for x in self.samples if start <= x[0] <= end]
        before = [x for x in self.samples if x[0] < start][-1:]
        after = [x for x in self.samples if x[0] > end][:1]
        window = before + inside + after
        if len(window) < 2:
            return {}
        (t0, p0, b0, a0), (t1, p1, b1, a1) = window[0], window[-1]
        wall = (t1 - t0).total_seconds()
        if wall <= 0 or a1 <= a0:
            return {}
        return {"daemon_cores": round((p1 - p0) / wall, 2), "machine_busy_pct": round(100 * (b1 - b0) / (a1 - a0), 1)}


def outcomes(ws: Workspace) -> tuple[dict[str, int], list[tuple[datetime, datetime]]]:
    """Deliveries by status, and (due, published_at) of each live one."""
    from sqlalchemy import select

    from publisher.store import db
    from publisher.store import models as m

    D = m.DeliveryRow
    with db.reading(ws.svc.engine) as s:
        rows = list(s.execute(select(D.status, D.due_at, D.published_at)))
    counts: dict[str, int] = {}
    times = []
    for status, due, published in rows:
        counts[status] = counts.get(status, 0) + 1
        if status == "live" and published is not None:
            times.append((due, published))
    return counts, times


def daemon_errors(ws: Workspace, log_name: str = "daemon.log") -> str:
    """The daemon's last error lines, and why deliveries that did not go live stopped."""
    from sqlalchemy import select

    from publisher.store import db
    from publisher.store import models as m

    text = (ws.dir / log_name).read_text(encoding="utf-8", errors="replace")
    bad = [line for line in text.splitlines() if '"level": "error"' in line or "Traceback" in line]
    with db.reading(ws.svc.engine) as s:
        q = select(m.DeliveryRow.account, m.DeliveryRow.status, m.DeliveryRow.last_error).where(
            m.DeliveryRow.status != "live"
        )
        bad += [f"{a} {st}: {err}" for a, st, err in s.execute(q.limit(5))]
    return "\n".join(bad[-10:])


# -- the baselines ----------------------------------------------------------------------------------
def _rendered(item: Seeded, photo: bytes, sha: str) -> Any:
    from publisher.connectors import MediaItem, RenderedPost

    return RenderedPost(item.text, (MediaItem(photo, "image/jpeg", sha, 640, 640),), item.delivery_id)


class Connectors:
    """One real connector per account, made on first use (as the daemon's Platforms does)."""

    def __init__(self, ws: Workspace, port: int) -> None:
        from publisher.connectors import ConnectorSettings

        self.ws = ws
        self.port = port
        self.settings = ConnectorSettings(timeout=10.0, instagram_pause=0.0, instagram_request_delay=0.0)
        self._made: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.locks = {name: threading.Lock() for name, _ in ws.accounts}
        self.platform = dict(ws.accounts)

    def get(self, account: str) -> Any:
        from publisher.connectors import make_connector

        with self._lock:
            if account not in self._made:
                self._made[account] = make_connector(
                    self.platform[account], self.ws.creds[account], settings=self.settings, sandbox_port=self.port
                )
            return self._made[account]


def limit_run(ws: Workspace, items: Sequence[Seeded], port: int, workers: int) -> tuple[float, list[float], int]:
    """The same connectors publishing the same posts in a plain thread pool of the same size:
    one task per post, accounts interleaved, one call at a time per account (as the daemon and
    the recipe do). Returns (start, done times, failures)."""
    conns = Connectors(ws, port)
    by_account: dict[str, list[Seeded]] = {}
    for it in items:
        by_account.setdefault(it.account, []).append(it)
    order = [it for group in zip_longest(*by_account.values()) for it in group if it is not None]
    done: list[float] = []
    failures = [0]
    lock = threading.Lock()

    def work(it: Seeded) -> None:
        try:
            with conns.locks[it.account]:
                conns.get(it.account).publish(_rendered(it, ws.photo, ws.photo_sha))
            t = time.time()
            with lock:
                done.append(t)
        except Exception:
            with lock:
                failures[0] += 1

    start = time.time()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, order))
    return start, done, failures[0]


class _RecipeState:
    conns: Connectors | None = None
    keys: dict[str, bytes] = {}  # noqa: RUF012 - module-level registry for the job function
    done: list[tuple[str, float]] = []  # noqa: RUF012
    failures: list[str] = []  # noqa: RUF012
    lock = threading.Lock()
    photo: bytes = b""
    sha: str = ""


RECIPE = _RecipeState()


def recipe_job(account: str, delivery_id: str, text: str, token: str, post_id: str) -> None:
    """What the recipe runs per post: check the approval signature, then publish."""
    from publisher.connectors import MediaItem, RenderedPost
    from publisher.domain import approval as ap

    try:
        claims = ap.verify_approval(token, RECIPE.keys[ap.token_key_id(token)])
        now = datetime.now(UTC)
        if claims.post_id != post_id or account not in claims.accounts or not claims.not_before <= now:
            raise ValueError("approval does not cover this post now")
        assert RECIPE.conns is not None
        post = RenderedPost(text, (MediaItem(RECIPE.photo, "image/jpeg", RECIPE.sha, 640, 640),), delivery_id)
        with RECIPE.conns.locks[account]:  # one call at a time per account, as the daemon does
            RECIPE.conns.get(account).publish(post)
        t = time.time()
        with RECIPE.lock:
            RECIPE.done.append((delivery_id, t))
    except Exception as exc:
        with RECIPE.lock:
            RECIPE.failures.append(f"{type(exc).__name__}: {exc}")


@contextlib.contextmanager
def recipe_scheduler(ws: Workspace, port: int, workers: int) -> Iterator[Any]:
    """APScheduler 3: SQLAlchemyJobStore on a SQLite file, a ThreadPoolExecutor of `workers`,
    started paused (so adding jobs is not timed). Jobs call `recipe_job`."""
    from apscheduler.executors.pool import ThreadPoolExecutor as ApsPool
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    RECIPE.conns = Connectors(ws, port)
    RECIPE.keys = {ws.key_id: ws.approver_public}
    RECIPE.done, RECIPE.failures = [], []
    RECIPE.photo, RECIPE.sha = ws.photo, ws.photo_sha
    store = SQLAlchemyJobStore(url=f"sqlite:///{ws.dir / 'apscheduler-jobs.sqlite'}")
    sched = BackgroundScheduler(
        jobstores={"default": store},
        executors={"default": ApsPool(workers)},
        job_defaults={"coalesce": False, "misfire_grace_time": None, "max_instances": 1},
        timezone=UTC,
    )
    sched.start(paused=True)
    try:
        yield sched
    finally:
        sched.shutdown(wait=False)


def add_recipe_jobs(sched: Any, items: Sequence[Seeded], run_at: datetime | None = None) -> None:
    for it in items:
        sched.add_job(
            "_common:recipe_job",
            "date",
            run_date=run_at or it.due,
            args=[it.account, it.delivery_id, it.text, it.token, it.post_id],
            id=it.delivery_id,
        )


def wait_recipe(count: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with RECIPE.lock:
            if len(RECIPE.done) + len(RECIPE.failures) >= count:
                return True
        time.sleep(0.05)
    return False


def lateness_stats(lates: Sequence[float]) -> dict[str, float]:
    return {
        "p50_s": round(percentile(lates, 50), 3),
        "p99_s": round(percentile(lates, 99), 3),
        "max_s": round(max(lates), 3) if lates else float("nan"),
        "mean_s": round(statistics.fmean(lates), 3) if lates else float("nan"),
    }


def rss_kb(pid: int, field_name: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def write_out(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwritten to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description="helpers for the benchmarks; `serve DIR` runs the emulators")
    parser.add_argument("mode", choices=["serve"])
    parser.add_argument("dir", type=Path)
    args = parser.parse_args()
    _serve(args.dir)


if __name__ == "__main__":
    main()
