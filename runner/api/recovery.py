"""Recovering after a runner died (kill -9, a crash, a closed terminal): telling whether a
run's runner still lives, and closing a run whose runner is gone: the attempts it left are
killed, or, where their executor can follow them from the handle alone (a cluster's
scheduler), handed to the next run; the containers they left are removed.

It must not decide what runs next (that is the plan) nor render anything.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.api.clusters import executor_for
from runner.errors import UserError
from runner.lock import JobLock
from runner.model import Cluster
from runner.state import Adoption, State

if TYPE_CHECKING:
    from runner.contracts import Executor

__all__ = ["reclaim", "runner_alive", "shown_state", "stop_attempt"]

Followed = dict[tuple[str, str, int], Adoption]  # (job, task, instance) -> its attempt

_EXECUTORS: dict[str, Executor] = {}


def _executor(name: str) -> Executor:
    """One executor per name for a clean-up: a scheduler is asked about the queue once."""
    if name not in _EXECUTORS:
        _EXECUTORS[name] = executor_for(Cluster("reclaim", name, 1, None, {}))
    return _EXECUTORS[name]


def stop_attempt(executor: str, handle: str) -> bool:
    """Stop an attempt a runner that died left behind, if it still runs; True if it did."""
    try:
        ex = _executor(executor or "local")
    except UserError:
        return False
    return bool(ex.reclaim(handle=handle))


def reclaim(state: State, run_id: int, job: str, why: str, adopt: Followed | None = None) -> int:
    """Close a run whose runner is gone. Attempts it left running are killed, or, given
    `adopt` and where their executor can follow an attempt from its handle alone (a cluster
    scheduler), left running and put in `adopt` for the next run. Returns how many killed."""
    followed: Followed = {} if adopt is None else adopt
    doomed = []
    for a in state.adoptable(run_id):
        try:
            ex = _executor(a["executor"] or "local")
        except UserError:
            continue
        if not a["handle"]:
            continue
        if (
            adopt is not None
            and "reattach" in ex.capabilities
            and ex.can_follow(handle=a["handle"])
        ):
            followed[(job, a["task"], a["idx"])] = Adoption(
                executor=a["executor"],
                handle=a["handle"],
                fingerprint=a["fingerprint"],
                stdout=a["stdout"],
                stderr=a["stderr"],
                started_at=a["started_at"] if a["state"] == "running" else None,
            )
        else:
            doomed.append((ex, a["handle"]))
    # containers first: killing their `podman run` (below) does not stop them
    _remove_leftover_containers(state, run_id, followed)
    killed = sum(1 for ex, handle in doomed if ex.reclaim(handle=handle))
    state.close_interrupted(run_id, job, why)
    return killed


def _remove_leftover_containers(state: State, run_id: int, adopt: Followed) -> int:
    """The containers a dead runner's attempts left on this host (killing its `podman run`
    does not stop them), except those of attempts the next run follows."""
    import shutil

    from runner import containers

    removed = 0
    for name in ("podman", "docker"):
        runtime = shutil.which(name)
        if runtime is None:
            continue
        labels = {"runner.state": containers.state_label(state.directory),
                  "runner.run": str(run_id)}  # fmt: skip
        gone = []
        for container, key in containers.leftovers(runtime, labels):
            job, task, idx = [*key.split("/"), "", "", ""][:3]
            if (job, task, int(idx) if idx.isdigit() else -1) not in adopt:
                gone.append(container)
        containers.remove_now(runtime, gone)
        removed += len(gone)
    return removed


def runner_alive(state_dir: Path, job: str, pid: int | None) -> bool:
    """Whether process `pid` of this host is a runner still applying `job` of `state_dir`.

    A runner holds its job's lock file open for as long as it applies the job and opens it
    for nothing else, and the kernel closes it when the runner dies: so `pid` is that runner
    exactly when one of its open files is the lock file. A process that merely reuses a dead
    runner's pid, or any other program with "runner" in its command line, is not. Where its
    open files may not be read (another user's process), a python running `runner apply`
    (`-m runner` or the `runner` script) counts.
    """
    if not pid:
        return False
    try:
        fds = os.scandir(f"/proc/{pid}/fd")
    except FileNotFoundError:  # gone (or no /proc: nothing can be told)
        return False
    except PermissionError:
        return _applies(pid)
    with fds:
        try:
            lock = os.stat(JobLock(state_dir, job).path)
        except OSError:  # no lock file: nothing ever applied this job here
            return False
        for fd in fds:
            try:
                st = os.stat(fd.path)  # follows the link to the open file itself
            except OSError:
                continue  # closed meanwhile
            if st.st_ino == lock.st_ino and st.st_dev == lock.st_dev:
                return True
    return False


def _applies(pid: int) -> bool:
    """Whether process `pid` runs `runner apply` (python -m runner, or the runner script)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    program = Path(argv[0]).name
    if program == "runner":
        args = argv[1:]
    elif program.startswith("python") and argv[1:3] == ["-m", "runner"]:
        args = argv[3:]
    elif program.startswith("python") and len(argv) > 1 and Path(argv[1]).name == "runner":
        args = argv[2:]
    else:
        return False
    return "apply" in args


def shown_state(state_dir: Path, run: dict[str, Any]) -> str:
    """A run's state as a person should read it: a run still marked running whose runner
    process is gone (kill -9, a crash) is shown as interrupted."""
    if (
        run["state"] == "running"
        and run["host"] == socket.gethostname()
        and not runner_alive(state_dir, run["job"], run["pid"])
    ):
        return "interrupted"
    return str(run["state"])
