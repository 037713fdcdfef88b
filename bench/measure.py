"""Running a benchmarked command: wall time and the resources of its whole process tree."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["run_measured"]


def run_measured(argv: list[str], cwd: Path) -> tuple[float, resource.struct_rusage]:
    """Run `argv` (output discarded) and return its wall seconds and its rusage, which covers
    every process it waited for. A failure ends the benchmark with the command's stderr."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        err = p.stderr.read().decode() if p.stderr else ""
        sys.exit(f"{argv[:4]} failed: {err[-2000:]}")
    p.returncode = 0
    return wall, usage
