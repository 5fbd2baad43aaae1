"""Steady load: R deliveries a second falling due, evenly spread, for S seconds; how late each goes out.

    python3 bench/bench_steady.py [--rate 20] [--seconds 60] [--accounts 20] [--workers 4] [--out FILE]

Lateness = the moment the publish call returned (project: the daemon's recorded published_at;
recipe: when the job's publish returned) minus the due time. Due times are staggered by 1/R
seconds (50 ms at 20/s) and spread round-robin over the accounts (a third each on X, Facebook
and Instagram). Project: `publisher run` as a real process with its real APScheduler dispatch
job (default [daemon] settings except the pool size, the sandbox port and Instagram's pauses).
Recipe: APScheduler 3, SQLAlchemyJobStore on SQLite, one date job per post at its due time, a
thread pool of the same size, each job verifying the approval token and publishing through the
same connector. Emulators with zero latency in their own process; posts seeded by the fast path
of bench/_common.py (not timed). Prints p50 / p99 / max; no assertions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

LEAD_S = 6.0


def _plan(n: int, rate: float, accounts: list[tuple[str, str]]) -> list[tuple[str, datetime]]:
    now = datetime.now(UTC).replace(microsecond=0)
    return [(accounts[i % len(accounts)][0], now + timedelta(seconds=i / rate)) for i in range(n)]


def project(base: Path, n: int, rate: float, accounts: list[tuple[str, str]], workers: int) -> dict[str, Any]:
    with c.SandboxProc(base / "sandbox") as sb:
        ws = c.make_workspace(base / "ws", accounts, sb, workers)
        try:
            plan = _plan(n, rate, accounts)
            c.seed(ws, plan)
            c.shift_due(ws, datetime.now(UTC) + timedelta(seconds=LEAD_S) - plan[0][1])
            settled, code, counts, times, created = c.run_until_settled(ws, sb, LEAD_S + n / rate + 120)
        finally:
            ws.close()
    lates = [(p - d).total_seconds() for d, p in times]
    out: dict[str, Any] = {
        "settled": settled,
        "daemon_exit": code,
        "statuses": counts,
        "emulator_posts_created": created,
    }
    out.update(c.lateness_stats(lates))
    return out


def recipe(base: Path, n: int, rate: float, accounts: list[tuple[str, str]], workers: int) -> dict[str, Any]:
    with c.SandboxProc(base / "sandbox") as sb:
        ws = c.make_workspace(base / "ws", accounts, sb, workers)
        try:
            items = c.seed(ws, _plan(n, rate, accounts), write=False)
            with c.recipe_scheduler(ws, sb.port, workers) as sched:
                t0 = datetime.now(UTC) + timedelta(seconds=3 + n * 0.006)
                due = {it.delivery_id: t0 + timedelta(seconds=i / rate) for i, it in enumerate(items)}
                for it in items:
                    sched.add_job(
                        "_common:recipe_job",
                        "date",
                        run_date=due[it.delivery_id],
                        args=[it.account, it.delivery_id, it.text, it.token, it.post_id],
                        id=it.delivery_id,
                    )
                added_late = datetime.now(UTC) > t0
                sched.resume()
                finished = c.wait_recipe(n, (t0 - datetime.now(UTC)).total_seconds() + n / rate + 120)
                sched.pause()
            created = sb.created()
            done = list(c.RECIPE.done)
            failures = list(c.RECIPE.failures)
        finally:
            ws.close()
    lates = [t - due[d].timestamp() for d, t in done]
    out: dict[str, Any] = {
        "finished": finished,
        "published": len(done),
        "failures": len(failures),
        "emulator_posts_created": created,
        "jobs_added_after_first_due": added_late,
    }
    out.update(c.lateness_stats(lates))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4, help="the daemon's pool ([daemon] workers, default 4)")
    parser.add_argument("--skip", action="append", default=[], choices=["project", "recipe"])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_steady.json"))
    args = parser.parse_args()
    n = round(args.rate * args.seconds)
    accounts, w = c.mix(args.accounts), args.workers
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-steady-") as tmp:
        base = Path(tmp)
        if "project" not in args.skip:
            print(f"project: {n} deliveries, {args.rate}/s over {len(accounts)} accounts, {w} workers ...", flush=True)
            t = time.perf_counter()
            rows["project"] = project(base / "project", n, args.rate, accounts, w)
            rows["project"]["wall_s"] = round(time.perf_counter() - t, 1)
        if "recipe" not in args.skip:
            print("recipe: APScheduler 3 + SQLAlchemyJobStore ...", flush=True)
            rows["recipe"] = recipe(base / "recipe", n, args.rate, accounts, w)
    print(f"\nSteady: {args.rate:g} deliveries/s due for {args.seconds:g} s ({n}), {len(accounts)} accounts, pool {w}")
    print(f"{'run':<10} {'p50':>8} {'p99':>8} {'max':>8}  target (p99 < 1 s)")
    for name, r in rows.items():
        target = c.verdict(r["p99_s"] < 1.0) if name == "project" else "(reference)"
        if name == "project":
            r["target_pass"] = bool(r["p99_s"] < 1.0)
        print(f"{name:<10} {r['p50_s']:>7.3f}s {r['p99_s']:>7.3f}s {r['max_s']:>7.3f}s  {target}")
    for name, r in rows.items():
        print(f"  {name}: {r}")
    c.write_out(
        args.out,
        {"rate_per_s": args.rate, "seconds": args.seconds, "accounts": len(accounts), "workers": w, "runs": rows},
    )


if __name__ == "__main__":
    main()
