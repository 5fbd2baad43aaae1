"""What one delivery costs the daemon: CPU time and SQL statements, in process, one worker.

    python3 bench/cost.py [--deliveries 1000] [--accounts 100] [--postgres]

The burst benchmark's set-up (bench/_common.py: the emulators in their own process, posts
seeded as Service.approve writes them), then a Daemon with a pool of one drains them in this
process. Prints the CPU milliseconds per delivery in this process, in the emulators' process
and (with --postgres) in every process named postgres on this machine (Linux /proc; on a
2-core machine the three share the cores), then the statements per delivery by kind, counted
at the driver's execute: every statement the database is sent, the log's appends and locks
included (on PostgreSQL each is a round trip; a lock and its read sent together count once,
under the lock's name). SQLite's BEGIN and COMMIT are among them; PostgreSQL's are not (psycopg
sends them itself), so the commits per delivery are printed too: each is two round trips more.
A profiling aid, steadier than the burst's rate on a shared machine; not part of `make bench`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--postgres", action="store_true", help="the store on PostgreSQL (as bench_burst.py)")
    args = parser.parse_args()
    from sqlalchemy import event

    from publisher import config as cfgmod
    from publisher.daemon import Daemon
    from publisher.queue.settings import QueueSettings
    from publisher.service import Service

    n, accounts = args.deliveries, c.mix(args.accounts)
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp, c.SandboxProc(Path(tmp) / "sandbox") as sb:
        ws = c.make_workspace(Path(tmp) / "ws", accounts, sb, 1, postgres=args.postgres)
        try:
            due = datetime.now(UTC) - timedelta(minutes=1)
            c.seed(ws, [(accounts[i % len(accounts)][0], due) for i in range(n)])
            svc = Service.open(cfgmod.load(ws.config_path), "daemon")
            statements: Counter[str] = Counter()

            def count(statement: str) -> None:
                words = str(statement).split()
                if words:
                    key = " ".join(words[:2]) + (f" ... {words[words.index('FROM') + 1]}" if "FROM" in words else "")
                    statements[key] += 1

            if args.postgres:
                import psycopg

                execute = psycopg.Cursor.execute

                def counted(self: Any, query: Any, *rest: Any, **kw: Any) -> Any:
                    count(query.as_string(self) if hasattr(query, "as_string") else query)
                    return execute(self, query, *rest, **kw)

                psycopg.Cursor.execute = counted  # type: ignore[method-assign]
            else:

                @event.listens_for(svc.engine, "connect")
                def trace(dbapi_conn: Any, _record: Any) -> None:
                    dbapi_conn.set_trace_callback(count)

                svc.engine.dispose()  # connections opened from here on are traced

            commits: list[int] = []
            event.listen(svc.engine, "commit", lambda _conn: commits.append(1))
            with Daemon(svc, QueueSettings.load(svc.config.path)) as daemon:
                others = {"emulators": lambda: c.process_cpu([sb.proc.pid]), "PostgreSQL server": c.postgres_cpu}
                before = {k: f() for k, f in others.items()}
                wall, cpu = time.perf_counter(), time.process_time()
                left = daemon.drain(None, timeout=600)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                elsewhere = {k: f() - before[k] for k, f in others.items()}
            counts, _ = c.outcomes(ws)
            svc.close()
        finally:
            ws.close()
    print(f"{n:,} deliveries, one worker: {counts}, {left} left")
    print(f"  {1000 * cpu / n:.2f} ms CPU per delivery, {n / wall:.1f} deliveries/s")
    for what, seconds in elsewhere.items():
        if seconds:
            print(f"  {1000 * seconds / n:.2f} ms CPU per delivery in the {what}")
    print(f"  {len(commits) / n:.2f} commits per delivery")
    print(f"  {sum(statements.values()) / n:.1f} statements per delivery:")
    for what, k in statements.most_common(20):
        print(f"    {k / n:5.2f}  {what}")


if __name__ == "__main__":
    main()
