"""Command-line latency: `publisher --help` and `publisher post list` beside `python -c pass`.

    python3 bench/bench_cli.py [--runs N] [--out bench/results_cli.json]

Each command runs N times in a fresh process (after one warm-up); the table gives the median
and the best wall time. `post list` reads a workspace with 200 drafted posts. No assertions.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _workspace(base: Path, posts: int) -> Path:
    from publisher import config as cfgmod
    from publisher.service import Service

    shutil.copy(ROOT / "config.toml", base / "config.toml")
    (base / "var").mkdir()
    svc = Service.open(cfgmod.load(base / "config.toml"), "bench", migrate=True)
    for i in range(posts):
        svc.post_draft(f"Post number {i}", ["stmarys-x"], "2027-06-01 10:00")
    svc.close()
    return base / "config.toml"


def _time(cmd: list[str], runs: int) -> dict[str, float]:
    subprocess.run(cmd, check=True, capture_output=True)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return {"median_s": round(statistics.median(samples), 4), "best_s": round(min(samples), 4)}


def run(runs: int) -> dict[str, Any]:
    from _common import entry_point

    publisher = entry_point() or "publisher"
    with tempfile.TemporaryDirectory() as tmp:
        config = _workspace(Path(tmp), 200)
        return {
            "python -c pass (baseline)": _time([sys.executable, "-c", "pass"], runs),
            "publisher --help": _time([publisher, "--help"], runs),
            "publisher post list (200 posts)": _time([publisher, "--config", str(config), "post", "list"], runs),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_cli.json"))
    args = parser.parse_args()
    results = run(args.runs)
    print(f"Command-line wall time, {args.runs} runs each")
    print(f"{'command':<36} {'median':>9} {'best':>9}")
    for name, r in results.items():
        print(f"{name:<36} {r['median_s']:>8.3f}s {r['best_s']:>8.3f}s")
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
