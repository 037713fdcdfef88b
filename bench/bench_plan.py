#!/usr/bin/env python3
"""Benchmark: `runner plan` of a manifest with N tasks (default 10,000), end to end.

Target (issue 2): <= 2 s at 10,000 tasks. The baseline, measured in the same run, is the bare
cost of parsing the same file with libyaml (`yaml.load(CSafeLoader)` in a fresh interpreter):
the ratio shows what validation, the DAG, fingerprints and state reads add on top.

    .venv/bin/python bench/bench_plan.py [-n 10000] [-r 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def manifest(n: int) -> str:
    lines = [
        "apiVersion: runner/v1",
        "kind: App",
        "metadata: {name: step}",
        "spec:",
        "  command: echo $<label> $<size>",
        "  params:",
        "    label: {type: string, required: true}",
        "    size: {type: int, default: 1}",
        "---",
        "apiVersion: runner/v1",
        "kind: Job",
        "metadata: {name: big}",
        "spec:",
        "  tasks:",
    ]
    for i in range(n):
        lines.append(f"    t{i}:")
        lines.append("      app: step")
        lines.append(f"      params: {{label: task-{i}, size: {i % 7}}}")
        if i:
            lines.append(f"      dependsOn: [t{(i - 1) // 2}]")  # a binary tree of tasks
    return "\n".join(lines) + "\n"


def timed(argv: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-n", type=int, default=10_000)
    ap.add_argument("-r", "--rounds", type=int, default=3)
    args = ap.parse_args()
    runner = shutil.which("runner", path=str(Path(sys.executable).parent)) or "runner"
    tmp = Path(tempfile.mkdtemp(prefix="runner-bench-plan-"))
    try:
        (tmp / "big.yaml").write_text(manifest(args.n))
        parse = [
            sys.executable,
            "-c",
            "import yaml; list(yaml.load_all(open('big.yaml'), Loader=yaml.CSafeLoader))",
        ]
        base, plan = [], []
        for _ in range(args.rounds):
            base.append(timed(parse, tmp))
            plan.append(timed([runner, "plan", "big.yaml"], tmp))
        b, p = statistics.median(base), statistics.median(plan)
        ok = "ok" if p <= 2.0 else "MISS"
        print(f"tasks={args.n} rounds={args.rounds} (interleaved, medians)")
        print(
            f"libyaml load only: {b:.2f} s   runner plan: {p:.2f} s   ratio {p / b:.2f}   "
            f"target <= 2 s: {ok}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
