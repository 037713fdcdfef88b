#!/usr/bin/env python3
"""Benchmark: N frames on k instances through `runner apply` versus one Blender process.

The example scene (manifests/examples/blender/make_scene.py) is rendered with more samples so
that a chunk of frames takes well over ten times Blender's start-up. In the same run, rounds
interleaved: one Blender process renders all N frames with k threads, and `runner apply`
renders them as k instances of one thread each. Printed: wall and CPU (user + system of the
whole process tree) of both, their ratios, and Blender's start-up cost per instance.
Target (issue 3): with start-up <= 10 % of render time, runner CPU <= 1.15x the single process.

    .venv/bin/python bench/bench_blender.py                 # 16 frames, 2 instances, 3 rounds
    .venv/bin/python bench/bench_blender.py -n 8 --samples 16 -r 1
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import run_measured

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "manifests" / "examples" / "blender"


def manifest(frames: int, instances: int, samples: int) -> str:
    return f"""apiVersion: runner/v1
kind: App
metadata: {{name: render}}
spec:
  kind: blender
  command: blender
  params:
    scene: {{type: path}}
    frames: {{type: frames}}
    threads: {{type: int}}
    samples: {{type: int}}
  inputs: {{input: {{}}}}
  outputs: {{output: {{}}}}
---
apiVersion: runner/v1
kind: Cluster
metadata: {{name: here}}
spec: {{executor: local, slots: {instances}}}
---
apiVersion: runner/v1
kind: Job
metadata: {{name: bench}}
spec:
  cluster: here
  tasks:
    render:
      app: render
      instances: {instances}
      params: {{scene: scene.blend, frames: 1-{frames}, threads: 1, samples: {samples}}}
      inputs: {{input: scenes}}
      outputs: {{output: out}}
"""


def measure(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the process and all it waited for)."""
    wall, usage = run_measured(argv, cwd)
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-n", "--frames", type=int, default=16)
    ap.add_argument("-k", "--instances", type=int, default=2)
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("-r", "--rounds", type=int, default=3)
    args = ap.parse_args()
    runner = shutil.which("runner", path=str(Path(sys.executable).parent)) or "runner"
    tmp = Path(tempfile.mkdtemp(prefix="runner-bench-blender-"))
    try:
        scenes = tmp / "scenes"
        scenes.mkdir()
        subprocess.run(
            ["blender", "-b", "--factory-startup", "--python-exit-code", "1", "--python",
             str(EXAMPLE / "make_scene.py"), "--", str(scenes / "scene.blend")],
            check=True, capture_output=True,
        )  # fmt: skip
        (tmp / "bench.yaml").write_text(manifest(args.frames, args.instances, args.samples))
        setup = f"import bpy; bpy.context.scene.cycles.samples = {args.samples}"
        single = [
            "blender", "-b", str(scenes / "scene.blend"), "--python-exit-code", "1",
            "--python-expr", setup, "-o", str(tmp / "single" / "####.png"), "-F", "PNG",
            "-t", str(args.instances), "-f", f"1..{args.frames}",
        ]  # fmt: skip
        startup = ["blender", "-b", str(scenes / "scene.blend"), "--python-expr", "pass"]
        sw, sc, rw, rc, st = [], [], [], [], []
        for i in range(args.rounds):
            wall, cpu = measure(single, tmp)
            sw.append(wall)
            sc.append(cpu)
            wall, cpu = measure(
                [runner, "apply", "bench.yaml", "--state-dir", f"state-{i}", "--force"], tmp
            )
            rw.append(wall)
            rc.append(cpu)
            st.append(measure(startup, tmp)[0])
        s_wall, s_cpu = statistics.median(sw), statistics.median(sc)
        r_wall, r_cpu = statistics.median(rw), statistics.median(rc)
        start = statistics.median(st)
        chunk_render = max(r_wall - start, 1e-9)  # each instance renders one chunk
        print(
            f"frames={args.frames} instances={args.instances} samples={args.samples} "
            f"rounds={args.rounds} (interleaved, medians)"
        )
        print(f"one Blender, {args.instances} threads: wall {s_wall:6.2f} s  CPU {s_cpu:6.2f} s")
        print(
            f"runner, {args.instances} instances x 1 thread: wall {r_wall:6.2f} s  "
            f"CPU {r_cpu:6.2f} s"
        )
        print(f"Blender start-up per instance: {start:.2f} s ({start / chunk_render:.0%} of a "
              f"chunk's {chunk_render:.1f} s)")  # fmt: skip
        ok = "ok" if r_cpu / s_cpu <= 1.15 else "MISS"
        print(
            f"ratios runner/single: wall {r_wall / s_wall:.2f}  CPU {r_cpu / s_cpu:.2f} "
            f"(target CPU <= 1.15: {ok})"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
