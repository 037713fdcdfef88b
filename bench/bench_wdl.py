#!/usr/bin/env python3
"""Benchmark: the germline example's data processing through `runner apply` versus
`miniwdl run` of the same workflow with the same (container-less) backend, same run.

Each round gets fresh copies (no state, no call cache), rounds interleaved, medians.
Target (issue 6): runner / miniwdl <= 1.1.

    .venv/bin/python bench/bench_wdl.py               # the 20 kb data set, 5 rounds
    .venv/bin/python bench/bench_wdl.py --length 200000 --depth 30 -r 3
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

ROOT = Path(__file__).resolve().parent.parent
GERMLINE = ROOT / "manifests" / "examples" / "germline"
BIN = Path(sys.executable).parent
PROCESSING = """\
apiVersion: runner/v1
kind: Job
metadata: {name: germline-processing}
spec:
  tasks:
    process:
      kind: wdl
      params: {workflow: wdl/processing.wdl, inputs: inputs/processing.json}
      outputs: {out: out/processing}
"""


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    assert done.returncode == 0, done.stdout + done.stderr
    return took


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-r", "--rounds", type=int, default=5)
    ap.add_argument("--length", type=int, default=20_000)
    ap.add_argument("--depth", type=int, default=40)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="runner-bench-wdl-"))
    try:
        data = tmp / "data"
        subprocess.run(
            [sys.executable, str(GERMLINE / "make_data.py"), "--length", str(args.length),
             "--depth", str(args.depth), "--out", str(data)],
            check=True, capture_output=True,
        )  # fmt: skip
        env = dict(
            os.environ,
            MINIWDL__SCHEDULER__CONTAINER_BACKEND="runner_host",
            MINIWDL_CFG=str(tmp / "none.cfg"),
        )
        (tmp / "none.cfg").write_text("")
        times: dict[str, list[float]] = {"runner": [], "miniwdl": []}
        for r in range(args.rounds):
            work = tmp / f"round{r}"
            shutil.copytree(GERMLINE, work, ignore=shutil.ignore_patterns("data*", "out", ".*"))
            os.symlink(data, work / "data")
            # the example's processing task alone: the data are made once, above
            (work / "processing.yaml").write_text(PROCESSING)
            order = ["runner", "miniwdl"] if r % 2 == 0 else ["miniwdl", "runner"]
            for what in order:
                if what == "runner":
                    argv = [str(BIN / "runner"), "apply", "processing.yaml"]
                    times["runner"].append(timed(argv, work))
                else:
                    argv = [
                        str(BIN / "miniwdl"), "run", "wdl/processing.wdl",
                        "-i", "inputs/processing.json", "--dir", str(work / "miniwdl") + "/.",
                        "--no-cache",
                    ]  # fmt: skip
                    times["miniwdl"].append(timed(argv, work, env))
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = med["runner"] / med["miniwdl"]
        print(
            f"germline processing, {args.length} bp at {args.depth}x, {args.rounds} rounds: "
            f"runner {med['runner']:.2f} s, miniwdl run {med['miniwdl']:.2f} s, ratio "
            f"{ratio:.3f} (target <= 1.1: {'ok' if ratio <= 1.1 else 'MISS'})"
        )
        print("  runner:  " + " ".join(f"{t:.2f}" for t in times["runner"]))
        print("  miniwdl: " + " ".join(f"{t:.2f}" for t in times["miniwdl"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
