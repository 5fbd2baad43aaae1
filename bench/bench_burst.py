"""Burst: N deliveries due at the same instant across M accounts, end to end, beside two baselines.

    python3 bench/bench_burst.py [--deliveries 10000] [--accounts 100] [--workers 4] [--out FILE]

Project: `publisher run` (a real process, default [daemon] settings except the pool size, the
sandbox port and Instagram's pauses, which are 0) claims, gates (approval signature, window,
consent, revocations), publishes through the real connectors and SDKs, logs and commits each
delivery. Measured on SQLite and on a fresh PostgreSQL schema (skipped, with a note, if
PostgreSQL is unreachable), and on PostgreSQL with two `publisher run` processes sharing the
queue (SKIP LOCKED claims; SQLite allows one daemon per file), each with the same pool. Rate = N / (last published_at - the common due time); it includes
the wait for the daemon's next dispatch tick (dispatch_seconds, 1 s by default). Beside it, from
the due time to the last publish: the daemons' CPU in cores and the machine's busy share (Linux
/proc), which say whether the daemon's one interpreter or the machine's cores bounded the run.

Limit: the same connectors publishing the same posts to the same emulators in a plain
ThreadPoolExecutor of the same size (one task per account, its posts in order), no queue,
gate or log; run before the project and again after it, and taken as the mean of the two (this
shared machine's speed drifts by a third within minutes). Recipe: APScheduler 3, SQLAlchemyJobStore on SQLite, one date job per post, a
ThreadPoolExecutor of the same size; each job verifies the post's approval token
(publisher.domain.approval.verify_approval) and publishes through the same connector.

Accounts: a third each on X, Facebook and Instagram (34/33/33 at 100), so every connector and
emulator carries the same share. The emulators run in their own process, one fresh process per
run, with zero latency. Posts are seeded by a fast path writing the rows Service.approve writes
(see bench/_common.py), excluded from the timing. Prints a table; no assertions.
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

LEAD_S = 5.0  # the daemon starts, then everything falls due this long after the seeding ends


def _plan(n: int, accounts: list[tuple[str, str]]) -> list[tuple[str, datetime]]:
    now = datetime.now(UTC).replace(microsecond=0)
    return [(accounts[i % len(accounts)][0], now) for i in range(n)]


def project(
    base: Path, n: int, accounts: list[tuple[str, str]], workers: int, postgres: bool, daemons: int = 1
) -> dict[str, Any]:
    with c.SandboxProc(base / "sandbox") as sb:
        ws = c.make_workspace(base / "ws", accounts, sb, workers, postgres=postgres)
        try:
            t = time.perf_counter()
            plan = _plan(n, accounts)
            c.seed(ws, plan)
            seed_s = time.perf_counter() - t
            c.shift_due(ws, datetime.now(UTC) + timedelta(seconds=LEAD_S) - plan[0][1])
            due = _common_due(ws)
            cpu = c.CpuSampler()
            settled, code, counts, times, created = c.run_until_settled(ws, sb, 60 + n * 0.1, daemons, cpu)
            error = c.daemon_errors(ws) if counts.get("live", 0) != n or created != n else ""
        finally:
            ws.close()
    last = max(p for _, p in times) if times else due
    first = min(p for _, p in times) if times else due
    span = (last - due).total_seconds()
    result = {
        "deliveries": n,
        "settled": settled,
        "daemon_exit": code,
        "statuses": counts,
        "emulator_posts_created": created,
        "seed_s": round(seed_s, 1),
        "first_publish_after_due_s": round((first - due).total_seconds(), 3),
        "all_live_after_due_s": round(span, 2),
        "per_s": round(counts.get("live", 0) / span, 1) if span > 0 else 0.0,
        **cpu.between(due, last),  # from the due time to the last publish
    }
    if error:
        result["error"] = error
    return result


def _common_due(ws: c.Workspace) -> datetime:
    from sqlalchemy import func, select

    from publisher.store import db
    from publisher.store import models as m

    with db.transaction(ws.svc.engine) as s:
        due = s.scalar(select(func.min(m.DeliveryRow.due_at)))
    assert due is not None
    return due


def limit(base: Path, n: int, accounts: list[tuple[str, str]], workers: int) -> dict[str, Any]:
    with c.SandboxProc(base / "sandbox") as sb:
        ws = c.make_workspace(base / "ws", accounts, sb, workers)
        try:
            items = c.seed(ws, _plan(n, accounts), write=False)
            start, done, failures = c.limit_run(ws, items, sb.port, workers)
            created = sb.created()
        finally:
            ws.close()
    span = max(done) - start
    return {
        "deliveries": n,
        "published": len(done),
        "failures": failures,
        "emulator_posts_created": created,
        "all_live_s": round(span, 2),
        "per_s": round(len(done) / span, 1),
    }


def recipe(base: Path, n: int, accounts: list[tuple[str, str]], workers: int) -> dict[str, Any]:
    with c.SandboxProc(base / "sandbox") as sb:
        ws = c.make_workspace(base / "ws", accounts, sb, workers)
        try:
            items = c.seed(ws, _plan(n, accounts), write=False)
            with c.recipe_scheduler(ws, sb.port, workers) as sched:
                t = time.perf_counter()
                c.add_recipe_jobs(sched, items, run_at=datetime.now(UTC))
                add_s = time.perf_counter() - t
                start = time.time()
                sched.resume()  # everything is due: the common due instant is now
                finished = c.wait_recipe(n, 60 + n * 0.2)
                sched.pause()
            created = sb.created()
            done = [d for _, d in c.RECIPE.done]
            failures = list(c.RECIPE.failures)
        finally:
            ws.close()
    span = (max(done) - start) if done else float("nan")
    out: dict[str, Any] = {
        "deliveries": n,
        "finished": finished,
        "published": len(done),
        "failures": len(failures),
        "emulator_posts_created": created,
        "jobs_added_s": round(add_s, 1),
        "all_live_s": round(span, 2),
        "per_s": round(len(done) / span, 1) if done else 0.0,
    }
    if failures:
        out["first_failure"] = failures[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4, help="the daemon's pool ([daemon] workers, default 4)")
    parser.add_argument("--skip", action="append", default=[], choices=["sqlite", "postgresql", "limit", "recipe"])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_burst.json"))
    args = parser.parse_args()
    n, accounts, w = args.deliveries, c.mix(args.accounts), args.workers
    rows: dict[str, dict[str, Any]] = {}
    limits: list[dict[str, Any]] = []  # run before the project and after it: the machine drifts
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        base = Path(tmp)
        if "limit" not in args.skip:
            print("limit, before the project: plain thread pool ...", flush=True)
            limits.append(limit(base / "limit-before", n, accounts, w))
        if "sqlite" not in args.skip:
            print(f"project on SQLite: {n} deliveries over {len(accounts)} accounts, {w} workers ...", flush=True)
            rows["project-SQLite"] = project(base / "sqlite", n, accounts, w, postgres=False)
        if "postgresql" not in args.skip and c.pg_reachable():
            print("project on PostgreSQL ...", flush=True)
            rows["project-PostgreSQL"] = project(base / "pg", n, accounts, w, postgres=True)
            print("project on PostgreSQL, two daemons ...", flush=True)
            rows["project-PostgreSQL-2d"] = project(base / "pg2", n, accounts, w, postgres=True, daemons=2)
        if "limit" not in args.skip:
            print("limit, after the project ...", flush=True)
            limits.append(limit(base / "limit-after", n, accounts, w))
            rates = [float(r["per_s"]) for r in limits]
            rows["limit"] = {
                "per_s": round(sum(rates) / len(rates), 1),
                "all_live_s": round(sum(float(r["all_live_s"]) for r in limits) / len(limits), 2),
                "before_per_s": rates[0],
                "after_per_s": rates[1],
                "runs": limits,
            }
        if "recipe" not in args.skip:
            print("recipe: APScheduler 3 + SQLAlchemyJobStore ...", flush=True)
            rows["recipe"] = recipe(base / "recipe", n, accounts, w)
    lim = rows.get("limit", {}).get("per_s") or 0.0
    rec = rows.get("recipe", {}).get("per_s") or 0.0
    print(f"\nBurst: {n:,} deliveries due at once over {len(accounts)} accounts, pool of {w}, zero latency")
    print(f"{'run':<20} {'deliveries/s':>13} {'% of limit':>11} {'x recipe':>9} {'all live after':>15}  target")
    for name, r in rows.items():
        rate = float(r.get("per_s") or 0.0)
        pct = 100 * rate / lim if lim else float("nan")
        ratio = rate / rec if rec else float("nan")
        span = r.get("all_live_after_due_s", r.get("all_live_s"))
        target = ""
        if name.startswith("project"):
            target = f"{c.verdict(pct >= 50)} >=50% limit, {c.verdict(ratio >= 3)} >=3x recipe"
            r["target_pass"] = bool(pct >= 50 and ratio >= 3)
            r["pct_of_limit"], r["x_recipe"] = round(pct, 1), round(ratio, 2)
        print(f"{name:<20} {rate:>13,.1f} {pct:>10.1f}% {ratio:>9.2f} {span:>14}s  {target}")
    if "limit" in rows:
        lr = rows["limit"]
        print(f"  (the limit is the mean of {lr['before_per_s']}/s before the project and {lr['after_per_s']}/s after)")
    sampled = {name: r for name, r in rows.items() if "daemon_cores" in r}
    if sampled:
        print("  CPU from the due time to the last publish (a daemon near one core, the machine not full:")
        print("  its interpreter is the bound; the machine near 100%: the cores are):")
        for name, r in sampled.items():
            print(f"    {name}: daemons {r['daemon_cores']} of a core, machine {r['machine_busy_pct']}% busy")
    for name, r in rows.items():
        extra = {k: v for k, v in r.items() if k not in ("per_s", "runs")}
        print(f"  {name}: {extra}")
    c.write_out(args.out, {"deliveries": n, "accounts": len(accounts), "workers": w, "runs": rows})


if __name__ == "__main__":
    main()
