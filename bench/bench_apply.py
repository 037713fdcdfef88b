#!/usr/bin/env python3
"""Benchmark: N trivial instances through `runner apply` versus the same N processes via xargs.

A fan-out/fan-in job (start -> N-2 instances of `true` -> end) is applied from scratch with a
fresh state directory; in the same run, `xargs -P SLOTS` starts N `true` processes. Rounds are
interleaved and medians compared. Peak memory is the runner process's max RSS (wait4).
Targets (issue 2): runner/xargs <= 1.5 at N = 2,000 and 10,000; peak memory <= 300 MB.

    .venv/bin/python bench/bench_apply.py            # N = 2000 and 10000, 3 rounds
    .venv/bin/python bench/bench_apply.py -n 500 -r 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import run_measured


def manifest(n: int, slots: int) -> str:
    return f"""apiVersion: runner/v1
kind: Cluster
metadata: {{name: bench}}
spec: {{executor: local, slots: {slots}}}
---
apiVersion: runner/v1
kind: Job
metadata: {{name: bench}}
spec:
  cluster: bench
  tasks:
    start: {{command: [true]}}
    work: {{command: [true], instances: {n - 2}, dependsOn: [start]}}
    end: {{command: [true], dependsOn: [work]}}
"""


def timed(argv: list[str], cwd: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a command and what it waited for."""
    wall, usage = run_measured(argv, cwd)
    return wall, usage.ru_maxrss


def bench(n: int, slots: int, rounds: int, runner: str) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix=f"runner-bench-{n}-"))
    (tmp / "bench.yaml").write_text(manifest(n, slots))
    xs, rs, mem = [], [], []
    try:
        for i in range(rounds):
            seq = "\n".join(str(i) for i in range(n)) + "\n"
            t0 = time.perf_counter()
            subprocess.run(
                ["xargs", "-P", str(slots), "-n", "1", "true"], input=seq.encode(), check=True
            )
            xs.append(time.perf_counter() - t0)
            # a fresh state directory per round; deleting the last one here instead would time
            # the file system's clean-up of thousands of log files, not the runner
            t, rss = timed([runner, "apply", "bench.yaml", "--state-dir", f"state-{i}"], tmp)
            rs.append(t)
            mem.append(rss / 1024)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    x, r = statistics.median(xs), statistics.median(rs)
    return {
        "n": n,
        "xargs_s": x,
        "runner_s": r,
        "ratio": r / x,
        "peak_mb": max(mem),
        "per_instance_ms": (r - x) / n * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-n", type=int, action="append", help="instances (repeatable)")
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("--slots", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    runner = shutil.which("runner", path=str(Path(sys.executable).parent)) or "runner"
    # an installed package has its bytecode compiled; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module on every start (~30 ms)
    repo = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(repo / "runner"), str(repo / "plugins")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"slots={args.slots} rounds={args.rounds} (interleaved, medians)")
    print(
        f"{'N':>7} {'xargs s':>9} {'runner s':>9} {'ratio':>6} {'target':>7} "
        f"{'peak MB':>8} {'overhead ms/instance':>21}"
    )
    for n in args.n or [2000, 10000]:
        b = bench(n, args.slots, args.rounds, runner)
        ok = "ok" if b["ratio"] <= 1.5 and b["peak_mb"] <= 300 else "MISS"
        print(
            f"{n:>7} {b['xargs_s']:>9.2f} {b['runner_s']:>9.2f} {b['ratio']:>6.2f} "
            f"{'<=1.5':>7} {b['peak_mb']:>8.0f} {b['per_instance_ms']:>21.3f}  {ok}",
            flush=True,
        )


if __name__ == "__main__":
    main()
