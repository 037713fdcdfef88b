#!/usr/bin/env python3
"""Benchmark: N trivial instances in a container versus the same N as plain local processes,
same run, through `runner apply` (local executor, 2 slots), fresh state each round, rounds
interleaved, medians. The image is the container example's (busybox-static, built here).

Reported: the wall times, their ratio, and the per-instance container overhead: the extra
wall time per instance times the slots (what one `podman run` costs a slot). Containers run
twice: with podman's default network (a bridge, set up for each container) and with
`runArgs: [--network=none]` (no network: most of the set-up goes).

    .venv/bin/python bench/bench_container.py            # 100 instances, 3 rounds
    .venv/bin/python bench/bench_container.py -n 40 -r 1
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import run_measured

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "localhost/runner-bench/wordfreq"
JOB = """\
apiVersion: runner/v1
kind: Cluster
metadata: {{name: here}}
spec: {{executor: local, slots: {slots}}}
---
apiVersion: runner/v1
kind: Job
metadata: {{name: bench}}
spec:
  cluster: here
  tasks:
    trivial:
      instances: {n}
      command: "true"
      {image}
"""


def once(n: int, slots: int, image: str | None, *, network: bool = True) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-container-") as tmp:
        work = Path(tmp)
        line = f"image: {image}" if image else ""
        if image and not network:
            line += "\n      runArgs: [--network=none]"
        (work / "m.yaml").write_text(JOB.format(n=n, slots=slots, image=line))
        return run_measured([sys.executable, "-m", "runner", "apply", "m.yaml"], work)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=100, help="instances")
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("--slots", type=int, default=2)
    args = ap.parse_args()
    build = ROOT / "manifests" / "examples" / "container" / "build-image.sh"
    subprocess.run([str(build), IMAGE], check=True, capture_output=True)
    image = f"{IMAGE}:1"
    plain, boxed, isolated = [], [], []
    for r in range(args.rounds):
        plain.append(once(args.n, args.slots, None))
        boxed.append(once(args.n, args.slots, image))
        isolated.append(once(args.n, args.slots, image, network=False))
        print(f"round {r + 1}: plain {plain[-1]:.2f} s, in containers {boxed[-1]:.2f} s, "
              f"without a network {isolated[-1]:.2f} s")  # fmt: skip
    p = statistics.median(plain)
    print(f"{args.n} instances, {args.slots} slots, medians of {args.rounds}:")
    print(f"  plain processes: {p:.2f} s")
    for name, times in (("in containers", boxed), ("in containers, --network=none", isolated)):
        b = statistics.median(times)
        per = (b - p) * args.slots / args.n
        print(f"  {name}: {b:.2f} s ({b / p:.0f}x); overhead per instance {per * 1000:.0f} ms"
              " of a slot")  # fmt: skip


if __name__ == "__main__":
    main()
