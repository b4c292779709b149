"""CLI start-up: the wall time of `pagekit --help` and `pagekit --version`.

    .venv/bin/python bench/cli_startup.py [--runs 9]

Each command runs as a user types it (a fresh process of the installed `pagekit`
script); the median of the runs is printed next to the goal of 0.5 s, with the
interpreter alone (`python -c pass`) for scale. A benchmark, not a test: a busy machine
moves the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL = 0.5  # seconds
PAGEKIT = str(Path(sys.executable).with_name("pagekit"))
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "pagekit --help": [PAGEKIT, "--help"],
    "pagekit --version": [PAGEKIT, "--version"],
}


def wall_times(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9, help="runs per command (median shown)")
    args = ap.parse_args()
    wall_times(COMMANDS["pagekit --help"], 1)  # warm the file cache and .pyc files
    print(f"median of {args.runs} runs (goal < {GOAL} s)")
    for name, cmd in COMMANDS.items():
        times = wall_times(cmd, args.runs)
        median = statistics.median(times)
        verdict = "" if name.startswith("python") else ("  ok" if median < GOAL else "  SLOW")
        print(f"{name:<18}: {median:.3f} s (min {min(times):.3f}, max {max(times):.3f}){verdict}")


if __name__ == "__main__":
    main()
