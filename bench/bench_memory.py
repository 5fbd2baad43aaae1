"""The daemon's memory: resident set idle, and its peak while publishing a burst.

    python3 bench/bench_memory.py [--deliveries 2000] [--accounts 20] [--idle 10] [--out FILE]

`publisher run` (a real process, SQLite, default [daemon] settings except the sandbox port and
Instagram's pauses) starts on a workspace whose N deliveries fall due after `--idle` + 5 s;
VmRSS is read from /proc/PID/status after `--idle` seconds, then VmHWM (the peak) once all
are live. Baseline: VmRSS of `python -c "import publisher.service"`. Emulators in their own
process; posts seeded by the fast path of bench/_common.py. Prints a table; no assertions.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

TARGET_MB = 150.0


def baseline_kb() -> int:
    code = (
        "import publisher.service\n"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS:')][0])"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=c.ROOT)
    return int(out.stdout.strip())


def daemon(base: Path, n: int, accounts: list[tuple[str, str]], idle: float, workers: int) -> dict[str, Any]:
    with c.SandboxProc(base / "sandbox") as sb:
        ws = c.make_workspace(base / "ws", accounts, sb, workers)
        try:
            now = datetime.now(UTC).replace(microsecond=0)
            plan = [(accounts[i % len(accounts)][0], now) for i in range(n)]
            c.seed(ws, plan)
            c.shift_due(ws, datetime.now(UTC) + timedelta(seconds=idle + 5) - now)
            proc = c.start_daemon(ws)
            try:
                time.sleep(idle)
                idle_kb = c.rss_kb(proc.pid)
                idle_hwm = c.rss_kb(proc.pid, "VmHWM")
                settled = c.wait_settled(ws, 60 + n * 0.2, proc)
                busy_hwm = c.rss_kb(proc.pid, "VmHWM")
                end_kb = c.rss_kb(proc.pid)
            finally:
                code = c.stop_daemon(proc)
            counts, _ = c.outcomes(ws)
        finally:
            ws.close()
    return {
        "settled": settled,
        "daemon_exit": code,
        "statuses": counts,
        "idle_rss_mb": round(idle_kb / 1024, 1),
        "idle_peak_mb": round(idle_hwm / 1024, 1),
        "burst_peak_mb": round(busy_hwm / 1024, 1),
        "after_burst_rss_mb": round(end_kb / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_memory.json"))
    args = parser.parse_args()
    base_mb = round(baseline_kb() / 1024, 1)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        r = daemon(Path(tmp), args.deliveries, c.mix(args.accounts), args.idle, args.workers)
    r["baseline_import_service_mb"] = base_mb
    r["target_pass"] = bool(r["idle_rss_mb"] < TARGET_MB and r["burst_peak_mb"] < TARGET_MB)
    print(f"\nDaemon memory (`publisher run`, SQLite), burst of {args.deliveries} over {args.accounts} accounts")
    print(f"{'measure':<44} {'MB':>7}  target (< {TARGET_MB:.0f} MB)")
    print(f"{'python -c import publisher.service (baseline)':<44} {base_mb:>7.1f}")
    print(
        f"{'daemon idle, VmRSS after ' + str(args.idle) + ' s':<44} {r['idle_rss_mb']:>7.1f}  {c.verdict(r['idle_rss_mb'] < TARGET_MB)}"
    )
    print(
        f"{'daemon peak during the burst, VmHWM':<44} {r['burst_peak_mb']:>7.1f}  {c.verdict(r['burst_peak_mb'] < TARGET_MB)}"
    )
    print(f"{'daemon after the burst, VmRSS':<44} {r['after_burst_rss_mb']:>7.1f}")
    print(f"  {r}")
    c.write_out(args.out, r)


if __name__ == "__main__":
    main()
