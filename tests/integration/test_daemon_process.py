"""`publisher run` as a real process: SIGKILL at random moments, SIGTERM, one daemon per SQLite
file. The emulators run in the test process (standing sandbox), injecting faults."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from publisher.sandbox import Sandbox
from tests.contract.queue.world import World, active, build_world, check_exactly_once, deliveries, leased, provision

from .test_daemon_faults import inject_faults

LAUNCH = "import sys; from publisher.cli import main; sys.exit(main())"


class Daemon:
    """A `publisher run` process; its output goes to files (a full pipe would stall it)."""

    def __init__(self, w: World, *args: str) -> None:
        cmd = [sys.executable, "-c", LAUNCH, "--config", str(w.config_path), "--as", "daemon", "run", "--json-logs"]
        self.err_path = w.dir / f"daemon-{time.monotonic_ns()}.log"
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([*cmd, *args], cwd=w.dir, stdout=err, stderr=err)
        self.pid = self.proc.pid

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    @property
    def err(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")


def start(w: World, *args: str) -> Daemon:
    return Daemon(w, *args)


def wait_settled(w: World, seconds: float) -> None:
    end = time.monotonic() + seconds
    while active(w.svc) and time.monotonic() < end:
        time.sleep(0.2)


@pytest.fixture
def standing(tmp_path: Path) -> Iterator[tuple[World, Sandbox, dict[str, str]]]:
    base = tmp_path / "w"
    with Sandbox(base / "var" / "sandbox", seed=5) as sb:
        w = build_world(base, daemon={"sandbox_port": sb.port})
        ids = provision(w, sb)
        yield w, sb, ids
        w.svc.close()


@pytest.mark.slow
def test_sigkill_at_ten_random_moments_never_duplicates_or_loses(
    standing: tuple[World, Sandbox, dict[str, str]],
) -> None:
    w, sb, ids = standing
    for _ in range(100):
        w.post()
    inject_faults(sb)
    rnd = random.Random(1234)
    kills_in_flight = 0
    for _ in range(10):
        proc = start(w)
        time.sleep(rnd.uniform(1.0, 2.5))
        kills_in_flight += sum(1 for r in deliveries(w.svc) if r.status == "inflight")
        proc.signal(signal.SIGKILL)
        proc.wait(10)
    assert active(w.svc), "the run finished before the kills: make it longer"
    assert kills_in_flight >= 1, "no kill landed while a delivery was in flight"
    proc = start(w)
    try:
        wait_settled(w, 120)
    finally:
        proc.signal(signal.SIGTERM)
        code = proc.wait(15)
    assert code == 0, proc.err[-2000:]
    assert active(w.svc) == 0
    counts = check_exactly_once(w.svc, sb, ids, allow_unconfirmed=True)
    assert counts.get("live", 0) + counts.get("unconfirmed", 0) == 300
    assert leased(w.svc) == []
    assert '"event": "published"' in proc.err


def test_sigterm_exits_0_within_10_seconds_and_leaves_nothing_claimed(
    standing: tuple[World, Sandbox, dict[str, str]],
) -> None:
    w, sb, _ = standing
    for _ in range(60):
        w.post()
    sb.inject("x", "*", "latency", rate=0.3, seconds=0.3)
    proc = start(w)
    end = time.monotonic() + 30
    while not any(r.status == "live" for r in deliveries(w.svc)) and time.monotonic() < end:
        time.sleep(0.1)
    assert active(w.svc), "everything was published before SIGTERM: make the run longer"
    proc.signal(signal.SIGTERM)
    t0 = time.monotonic()
    code = proc.wait(15)
    assert code == 0, proc.err[-2000:]
    assert time.monotonic() - t0 < 10
    assert leased(w.svc) == []
    assert '"event": "stopped"' in proc.err


def test_a_second_daemon_on_the_same_sqlite_file_exits_naming_the_holder(
    standing: tuple[World, Sandbox, dict[str, str]],
) -> None:
    w, _, _ = standing
    first = start(w)
    try:
        lock = w.dir / "var" / "daemon.lock"
        end = time.monotonic() + 20
        while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < end:
            time.sleep(0.1)
        second = start(w, "--once")
        assert second.wait(20) == 1
        assert f"pid {first.pid}" in second.err and "Another daemon is running" in second.err
    finally:
        first.signal(signal.SIGTERM)
        code = first.wait(15)
    assert code == 0
    assert os.path.exists(w.dir / "var" / "daemon.lock")
