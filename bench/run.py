"""Run every benchmark in bench/ and gather the figures into bench/results.json.

    python3 bench/run.py [--quick]

Each bench_*.py prints its own table (the project beside its baseline, measured in the same
run) and writes its figures; this collects them, with the machine they ran on. `--quick`
passes each benchmark its small sizes (for a smoke run, not for the README's figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = {
    "bench_log.py": ["--entries", "20000", "--appends", "500"],
    "bench_cli.py": ["--runs", "3"],
    "bench_burst.py": ["--deliveries", "1000", "--accounts", "20"],
    "bench_steady.py": ["--seconds", "10"],
    "bench_slow.py": ["--deliveries", "200", "--accounts", "20"],
    "bench_sar.py": ["--entries", "50000", "--subjects", "1000"],
    "bench_memory.py": ["--deliveries", "300", "--accounts", "10", "--idle", "5"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="run only bench_<name>.py")
    args = parser.parse_args()
    results: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if args.only and (HERE / "results.json").exists():  # one benchmark again: keep the others' figures
        kept = json.loads((HERE / "results.json").read_text())
        results = {**kept, f"{args.only}_started": results["started"]}
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if args.only and name != args.only:
            continue
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
            out = Path(tmp.name)
        cmd = [sys.executable, str(script), "--out", str(out), *(QUICK.get(script.name, []) if args.quick else [])]
        print(f"\n=== {script.name} ===", flush=True)
        os.sync()  # the last benchmark's writes (a 1,000,000-entry log) flushed before this one times fsyncs
        started = time.perf_counter()
        code = subprocess.call(cmd)
        if code != 0:
            failed.append(script.name)
            continue
        results[name] = {**json.loads(out.read_text()), "wall_s": round(time.perf_counter() - started, 1)}
        out.unlink()
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nfigures written to {HERE / 'results.json'}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
