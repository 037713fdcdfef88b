"""`runner cluster apply` creates and resizes host groups on the real SGE cell of this
machine; `runner cluster status` shows hosts, slots and load (SGE and Slurm)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def runner(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True
    )


def qconf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qconf", *args], capture_output=True, text=True)


HOST = subprocess.run(["qconf", "-sel"], capture_output=True, text=True).stdout.split()[0]
CLUSTER = """\
apiVersion: runner/v1
kind: Cluster
metadata: {{name: farm}}
spec:
  executor: sge
  queue: {group}.q
  groups:
    {group}: {{hosts: [{hosts}], slots: {slots}}}
"""


@pytest.fixture
def group() -> Iterator[str]:
    name = f"rtest{os.getpid()}"
    yield name
    queue = f"{name}.q"
    subprocess.run(["qmod", "-d", queue], capture_output=True)
    deadline = time.monotonic() + 30
    while qconf("-dq", queue).returncode != 0 and f"{queue}\n" in qconf("-sql").stdout:
        assert time.monotonic() < deadline, f"could not remove {queue}"
        time.sleep(0.5)  # a job of another test landed there: it ends soon
    qconf("-dhgrp", f"@{name}")


def test_cluster_apply_creates_and_resizes_a_group(tmp_path: Path, group: str) -> None:
    (tmp_path / "c.yaml").write_text(CLUSTER.format(group=group, hosts=HOST, slots=1))
    r = runner("cluster", "apply", "c.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    subprocess.run(["qmod", "-d", f"{group}.q"], capture_output=True)  # keep other tests out
    assert f"created host group @{group}: {HOST}" in r.stdout
    assert f"created queue {group}.q: 1 slot(s) on each host of @{group}" in r.stdout
    assert HOST in qconf("-shgrp", f"@{group}").stdout
    again = runner("cluster", "apply", "c.yaml", cwd=tmp_path)
    assert again.stdout.strip() == "cluster farm: unchanged", again.stdout + again.stderr
    (tmp_path / "c.yaml").write_text(CLUSTER.format(group=group, hosts=HOST, slots=3))
    resized = runner("cluster", "apply", "c.yaml", cwd=tmp_path)
    assert f"queue {group}.q: 3 slot(s) on each host" in resized.stdout, resized.stdout
    assert "slots                 3" in qconf("-sq", f"{group}.q").stdout
    status = runner("cluster", "status", "c.yaml", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert f"{group}.q" in status.stdout and HOST in status.stdout and "LOAD" in status.stdout


def test_cluster_apply_names_a_host_sge_does_not_know(tmp_path: Path, group: str) -> None:
    (tmp_path / "c.yaml").write_text(
        CLUSTER.format(group=group, hosts=f"{HOST}, no-such-node-7", slots=1)
    )
    r = runner("cluster", "apply", "c.yaml", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no-such-node-7 not an execution host of this cell" in r.stderr
    assert "Traceback" not in r.stderr
    assert f"@{group}" not in qconf("-shgrpl").stdout  # nothing half-made


def test_cluster_status_on_slurm(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "apiVersion: runner/v1\nkind: Cluster\nmetadata: {name: hpc}\n"
        "spec: {executor: slurm, queue: debug}\n"
    )
    r = runner("cluster", "status", "c.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "== cluster hpc (slurm)" in r.stdout and "debug" in r.stdout
    assert socket.gethostname().split(".")[0] in r.stdout
