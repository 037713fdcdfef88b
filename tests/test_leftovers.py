"""A test that fails half-way leaves nothing behind: no server still listening, no container,
no job in the SGE queue (tests/leftovers.py, which the root conftest.py loads for every test).

The test below runs a small pytest session of its own whose one test starts all three, kills
the runners that started them with -9 (so they cannot clean up) and then fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from runner.containers import state_label
from tests.conftest import ROOT

FAILS_HALF_WAY = '''
import json, os, signal, subprocess, sys, time
from pathlib import Path

IMAGE = "{image}:1"


def until(ready):
    deadline = time.monotonic() + 60
    while not ready():
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_fails_half_way(tmp_path):
    server = subprocess.Popen([sys.executable, "-m", "http.server", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    boxed, queued = tmp_path / "boxed", tmp_path / "queued"
    boxed.mkdir(); queued.mkdir()
    (boxed / "m.yaml").write_text(
        "apiVersion: runner/v1\\nkind: Job\\nmetadata: {{name: boxed}}\\nspec:\\n  tasks:\\n"
        f"    t:\\n      image: {{IMAGE}}\\n      imagePullPolicy: Never\\n"
        "      command: sleep 300\\n")
    (queued / "m.yaml").write_text(
        "apiVersion: runner/v1\\nkind: Cluster\\nmetadata: {{name: farm}}\\nspec:\\n"
        "  executor: sge\\n  settings: {{native: [-h]}}\\n---\\n"
        "apiVersion: runner/v1\\nkind: Job\\nmetadata: {{name: held}}\\nspec:\\n"
        "  cluster: farm\\n  tasks:\\n    t: {{command: sleep 300}}\\n")
    runners = [subprocess.Popen([sys.executable, "-m", "runner", "apply", "m.yaml"], cwd=d,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for d in (boxed, queued)]
    until(lambda: list(queued.rglob("job-id")))
    podman_run = []
    until(lambda: podman_run.extend(
        int(p) for p in os.listdir("/proc") if p.isdigit()
        and b"podman\\0run" in Path(f"/proc/{{p}}/cmdline").read_bytes()
        and str(boxed).encode() in Path(f"/proc/{{p}}/cmdline").read_bytes()) or podman_run)
    time.sleep(1)  # the container is up
    for r in runners:
        r.kill()  # kill -9: no runner left to cancel anything
    for p in podman_run:
        os.kill(p, signal.SIGKILL)  # as a scheduler would: the container lives on
    (Path(os.environ["LEFT"]) / "left.json").write_text(json.dumps({{
        "server": server.pid,
        "job": next(queued.rglob("job-id")).read_text().strip(),
        "state": str(boxed / ".runner"),
    }}))
    assert False, "fails half-way"
'''


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_test_that_fails_half_way_leaves_no_server_container_or_job(
    tmp_path: Path, images: str
) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "test_inner.py").write_text(textwrap.dedent(FAILS_HALF_WAY.format(image=images)))
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.leftovers", "-p", "no:cacheprovider",
         "--rootdir", str(inner), "--basetemp", str(tmp_path / "temp"), str(inner)],
        cwd=inner, capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LEFT": str(tmp_path)},
    )  # fmt: skip
    assert "fails half-way" in p.stdout and p.returncode == 1, p.stdout + p.stderr
    left = json.loads((tmp_path / "left.json").read_text())
    assert not alive(left["server"]), "the server still runs"
    containers = subprocess.run(
        ["podman", "ps", "--all", "--format", "{{.Names}}",
         "--filter", f"label=runner.state={state_label(Path(left['state']))}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert containers == [], "a container was left behind"
    queue = subprocess.run(["qstat"], capture_output=True, text=True).stdout
    assert left["job"] not in queue.split(), queue
