"""Slow platforms: N deliveries due at once over M accounts, every emulator request 200 ms late.

    python3 bench/bench_slow.py [--deliveries 1000] [--accounts 100] [--latency 0.2]
                                [--workers 100 --workers 4 ...] [--out FILE]

Time from the common due time until every delivery is live, for the project (`publisher run`,
a real process) and for the limit (the same connectors, same posts, same emulators, a plain
thread pool of the same size, one call at a time per account). Each pool size given with
--workers is measured (default: one thread per account; the daemon's default of 4 takes
minutes here, since every post is several 200 ms requests made one after another). The
emulators run in their own process and sleep `--latency` seconds before answering every
request (Sandbox.inject(platform, "*", "latency", rate=1.0, ...)). Posts seeded by the fast
path of bench/_common.py (not timed). Prints a table, and the daemon's CPU from the due time to
the last publish (Linux /proc), which says what bounded it; no assertions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

LEAD_S = 5.0


def _plan(n: int, accounts: list[tuple[str, str]]) -> list[tuple[str, datetime]]:
    now = datetime.now(UTC).replace(microsecond=0)
    return [(accounts[i % len(accounts)][0], now) for i in range(n)]


def project(base: Path, n: int, accounts: list[tuple[str, str]], workers: int, latency: float) -> dict[str, Any]:
    with c.SandboxProc(base / "sandbox") as sb:
        ws = c.make_workspace(base / "ws", accounts, sb, workers)
        try:
            plan = _plan(n, accounts)
            c.seed(ws, plan)
            sb.latency(latency)
            due = datetime.now(UTC) + timedelta(seconds=LEAD_S)
            c.shift_due(ws, due - plan[0][1])
            cpu = c.CpuSampler()
            settled, code, counts, times, created = c.run_until_settled(
                ws, sb, LEAD_S + 60 + n * latency * 12 / workers, cpu=cpu
            )
        finally:
            ws.close()
    last = max((p for _, p in times), default=due)
    first = min((p for _, p in times), default=due)
    span = (last - due).total_seconds()
    return {
        "settled": settled,
        "daemon_exit": code,
        "statuses": counts,
        "emulator_posts_created": created,
        "first_live_s": round((first - due).total_seconds(), 3),
        "all_live_s": round(span, 2),
        **cpu.between(due, last),  # from the due time to the last publish
    }


def limit(base: Path, n: int, accounts: list[tuple[str, str]], workers: int, latency: float) -> dict[str, Any]:
    with c.SandboxProc(base / "sandbox") as sb:
        ws = c.make_workspace(base / "ws", accounts, sb, workers)
        try:
            items = c.seed(ws, _plan(n, accounts), write=False)
            sb.latency(latency)
            start, done, failures = c.limit_run(ws, items, sb.port, workers)
            created = sb.created()
        finally:
            ws.close()
    return {
        "published": len(done),
        "failures": failures,
        "emulator_posts_created": created,
        "all_live_s": round(max(done) - start, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument(
        "--workers", type=int, action="append", help="pool sizes to measure (default: M, one per account)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_slow.json"))
    args = parser.parse_args()
    n, accounts = args.deliveries, c.mix(args.accounts)
    pools = args.workers or [len(accounts)]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-slow-") as tmp:
        base = Path(tmp)
        for w in pools:
            print(f"pool of {w}: project, then limit ({n} deliveries over {len(accounts)} accounts) ...", flush=True)
            ours = project(base / f"p{w}", n, accounts, w, args.latency)
            lim = limit(base / f"l{w}", n, accounts, w, args.latency)
            rows.append({"workers": w, "project": ours, "limit": lim, "target_pass": ours["all_live_s"] <= 10.0})
    print(
        f"\nSlow platforms: {n:,} deliveries due at once over {len(accounts)} accounts, {args.latency * 1000:.0f} ms per request"
    )
    print(f"{'workers':>8} {'project all live':>17} {'limit all live':>15} {'project/limit':>14}  target (<= 10 s)")
    for r in rows:
        p, lim = r["project"]["all_live_s"], r["limit"]["all_live_s"]
        print(f"{r['workers']:>8} {p:>16.2f}s {lim:>14.2f}s {p / lim:>14.2f}  {c.verdict(r['target_pass'])}")
    print("  the daemon's CPU from the due time to the last publish (near one core, the machine not full:")
    print("  its interpreter is the bound; the machine near 100%: the cores are; the latency: neither):")
    for r in rows:
        p = r["project"]
        if "daemon_cores" in p:
            print(
                f"    workers {r['workers']}: daemon {p['daemon_cores']} of a core, machine {p['machine_busy_pct']}% busy"
            )
    for r in rows:
        print(f"  workers {r['workers']}: project {r['project']}; limit {r['limit']}")
    c.write_out(args.out, {"deliveries": n, "accounts": len(accounts), "latency_s": args.latency, "runs": rows})


if __name__ == "__main__":
    main()
