"""A pytest plugin (loaded by the root conftest.py): what a test started goes when the test
ends, above all when it fails half-way.

Every process a test starts inherits a mark of that test in its environment (the runner and
its spawner pass their environment on, so instances, `podman run` and servers carry it too,
even after their parent died). When the test ends, processes still carrying its mark get
SIGTERM (a runner then cancels its scheduler jobs and removes its containers), then SIGKILL.
When the test failed, the SGE and Slurm jobs and the containers of every state folder under its
`tmp_path` are deleted as well: a runner killed with -9, or stuck, cannot do that itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.containers import state_label

MARK = "RUNNER_TEST_MARK"
FAILED = pytest.StashKey[bool]()
GRACE = 5.0  # seconds a runner gets to cancel its jobs and containers after SIGTERM


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if getattr(report, "failed", False):
        item.stash[FAILED] = True
    return report


def marked(value: str) -> dict[int, int]:
    """pid -> parent pid of the live processes whose environment holds MARK=value."""
    needle = f"{MARK}={value}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone, or not ours to read
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and needle in env.split(b"\0"):
            found[int(entry)] = int(fields[1])
    return found


def stop(value: str) -> None:
    """SIGTERM to the marked processes whose parent is not marked, then SIGKILL to all."""
    alive = marked(value)
    if not alive:
        return
    for pid, parent in alive.items():
        if parent not in alive:
            _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = marked(value)
    for pid in alive:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(OSError):  # gone already
        os.kill(pid, sig)


def delete_jobs(folder: Path) -> None:
    """qdel / scancel every array job the runner submitted from a state folder below here."""
    for job_id in folder.rglob("job-id"):
        scheduler = job_id.parent.name.split("-", 1)[0]
        tool = {".sge": "qdel", ".slurm": "scancel"}.get(scheduler)
        if tool and shutil.which(tool):
            subprocess.run([tool, job_id.read_text().strip()], capture_output=True, timeout=60)


def remove_containers(folder: Path) -> None:
    """Remove the containers of every state folder below here."""
    podman = shutil.which("podman")
    if podman is None:
        return
    for state in folder.rglob(".runner"):
        names = subprocess.run(
            [podman, "ps", "--all", "--format", "{{.Names}}",
             "--filter", f"label=runner.state={state_label(state)}"],
            capture_output=True, text=True, timeout=60,
        ).stdout.split()  # fmt: skip
        if names:
            subprocess.run([podman, "rm", "--force", "--time", "0", *names],
                           capture_output=True, timeout=120)  # fmt: skip


@pytest.fixture(autouse=True)
def _no_leftovers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    value = uuid.uuid4().hex
    before = os.environ.get(MARK)
    os.environ[MARK] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(MARK, None)
        else:
            os.environ[MARK] = before
        stop(value)
        if request.node.stash.get(FAILED, False):
            delete_jobs(tmp_path)
            remove_containers(tmp_path)
