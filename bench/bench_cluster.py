#!/usr/bin/env python3
"""Benchmark: trivial instances through `runner apply` on SGE and Slurm versus one raw array
job submitted by hand, same run, on the single-node schedulers of scripts/schedulers.

- SGE: N instances of `true` through the runner vs `qsub -t 1-N -sync y`.
- Slurm: the same vs `sbatch --array=1-N --wait`.
Target (issue 5): runner / raw <= 1.2. Every scheduler command the runner runs is counted
(through logging wrappers put first on its PATH) and reported per minute.

    .venv/bin/python bench/bench_cluster.py                  # 200 instances, 1 round, both
    .venv/bin/python bench/bench_cluster.py -n 50 -r 2 --scheduler slurm
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "sge": ["qsub", "qstat", "qacct", "qdel"],
    "slurm": ["sbatch", "squeue", "scontrol", "scancel"],
}
JOB = """\
apiVersion: runner/v1
kind: Job
metadata: {{name: bench}}
spec:
  cluster: farm
  tasks:
    trivial: {{instances: {n}, command: "true"}}
---
apiVersion: runner/v1
kind: Cluster
metadata: {{name: farm}}
spec: {{executor: {scheduler}}}
"""


def wrappers(folder: Path, log: Path) -> None:
    """A logging wrapper for every scheduler command, first on PATH."""
    folder.mkdir()
    for names in COMMANDS.values():
        for name in names:
            real = shutil.which(name)
            assert real, f"{name} not found: run scripts/schedulers first"
            w = folder / name
            w.write_text(f'#!/bin/sh\necho "$(date +%s.%N) {name}" >> {log}\nexec {real} "$@"\n')
            w.chmod(0o755)


def raw(scheduler: str, n: int, tmp: Path) -> float:
    script = tmp / "true.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    if scheduler == "sge":
        argv = ["qsub", "-sync", "y", "-t", f"1-{n}", "-N", "bench-raw", "-S", "/bin/bash",
                "-o", "/dev/null", "-j", "y", str(script)]  # fmt: skip
    else:
        argv = ["sbatch", "--wait", f"--array=1-{n}", "-J", "bench-raw", "-o", "/dev/null",
                str(script)]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - t0


def through_runner(scheduler: str, n: int, tmp: Path, calls: collections.Counter[str]) -> float:
    work = Path(tempfile.mkdtemp(dir=tmp))
    (work / "m.yaml").write_text(JOB.format(n=n, scheduler=scheduler))
    log = tmp / "calls.log"
    log.unlink(missing_ok=True)
    env = dict(os.environ, PATH=f"{tmp / 'wrappers'}:{os.environ['PATH']}")
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "runner", "apply", "m.yaml"], cwd=work, env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    took = time.perf_counter() - t0
    assert done.returncode == 0, done.stdout + done.stderr
    for line in log.read_text().splitlines():
        calls[line.split()[1]] += 1
    return took


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-n", "--instances", type=int, default=200)
    ap.add_argument("-r", "--rounds", type=int, default=1)
    ap.add_argument("--scheduler", choices=["sge", "slurm", "both"], default="both")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="runner-bench-cluster-"))
    try:
        wrappers(tmp / "wrappers", tmp / "calls.log")
        schedulers = ["sge", "slurm"] if args.scheduler == "both" else [args.scheduler]
        for scheduler in schedulers:
            times: dict[str, list[float]] = {"raw": [], "runner": []}
            calls: collections.Counter[str] = collections.Counter()
            for r in range(args.rounds):
                order = ["raw", "runner"] if r % 2 == 0 else ["runner", "raw"]
                for what in order:
                    if what == "raw":
                        times["raw"].append(raw(scheduler, args.instances, tmp))
                    else:
                        times["runner"].append(
                            through_runner(scheduler, args.instances, tmp, calls)
                        )
            med = {k: statistics.median(v) for k, v in times.items()}
            ratio = med["runner"] / med["raw"]
            minutes = sum(times["runner"]) / 60
            per_min = ", ".join(f"{k} {v / minutes:.1f}" for k, v in sorted(calls.items()))
            total = sum(calls.values()) / minutes
            print(
                f"{scheduler}: {args.instances} instances, {args.rounds} round(s): runner "
                f"{med['runner']:.1f} s, raw array job {med['raw']:.1f} s, ratio {ratio:.2f} "
                f"(target <= 1.2: {'ok' if ratio <= 1.2 else 'MISS'})"
            )
            print(f"  scheduler calls per minute by the runner: {total:.1f} ({per_min})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
