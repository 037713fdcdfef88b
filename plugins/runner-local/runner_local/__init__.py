"""The `local` executor: each attempt a real process in its own process group on this machine.

Completion is event-driven: every child gets a pidfd watched by the event loop, so the runner
wakes exactly when a process exits and never sleeps to poll. Killing an attempt kills its whole
process group (SIGTERM, then SIGKILL after a grace period), so nothing it started is orphaned.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from runner.contracts import Cluster, LaunchSpec, Status

__all__ = ["LocalExecutor"]

KILL_GRACE = 3.0
_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


def _is_attempt(pid: int, key: str) -> bool:
    """Whether process `pid` is the attempt `key` (job/task/index/attempt), judged by the
    environment it was started with: a pid alone may have been reused since."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = set(f.read().split(b"\0"))
    except OSError:
        return False
    job, task, index, attempt = key.split("/")
    wanted = {
        f"RUNNER_JOB={job}",
        f"RUNNER_TASK={task}",
        f"RUNNER_INSTANCE_ID={index}",
        f"RUNNER_ATTEMPT={attempt}",
    }
    return {w.encode() for w in wanted} <= env


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class LocalExecutor:
    """Runs attempts as child processes of the runner."""

    capabilities = frozenset({"event-driven", "process-groups"})

    def __init__(self, *, cluster: Cluster) -> None:
        self._cluster = cluster
        self._running: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        self._exited: dict[str, int] = {}
        self._stopping: set[str] = set()
        self._logs: dict[str, tuple[Path, Path]] = {}
        self._changed = asyncio.Event()
        self._failed_starts = itertools.count()
        self._base_env = dict(os.environ)

    async def submit(self, *, spec: LaunchSpec) -> str:
        """Start the process; its pidfd wakes the event loop when it exits."""
        env = {**self._base_env, **spec.env}
        out = os.open(spec.stdout, _LOG_FLAGS, 0o644)
        err = os.open(spec.stderr, _LOG_FLAGS, 0o644)
        try:
            proc = subprocess.Popen(
                spec.argv,
                cwd=spec.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        except (OSError, ValueError, IndexError) as e:
            # the program cannot start: report it like a shell would (127 not found, 126 not
            # executable), with the reason in the attempt's stderr
            handle = f"failed:{os.getpid()}:{next(self._failed_starts)}"
            code = 126 if getattr(e, "errno", None) in (errno.EACCES, errno.ENOEXEC) else 127
            if isinstance(e, OSError):
                name = getattr(e, "filename", None)
                what = spec.argv[0] if name in (None, spec.argv[0]) else name
                text = f"runner: cannot start {what!r}: {e.strerror}\n"
            else:
                text = f"runner: cannot start {spec.argv!r}: the command is empty or invalid\n"
            os.write(err, text.encode())
            self._exited[handle] = code
            self._logs[handle] = (spec.stdout, spec.stderr)
            self._changed.set()
            return handle
        finally:
            os.close(out)
            os.close(err)
        # the handle is stored by the engine; pid plus key lets a later runner tell this
        # process apart from an unrelated one that reused the pid
        handle = f"{proc.pid}:{spec.key}"
        pidfd = os.pidfd_open(proc.pid)
        self._running[handle] = (proc, pidfd)
        self._logs[handle] = (spec.stdout, spec.stderr)
        asyncio.get_running_loop().add_reader(pidfd, self._reap, handle)
        return handle

    def _reap(self, handle: str) -> None:
        proc, pidfd = self._running.pop(handle)
        self._stopping.discard(handle)
        loop = asyncio.get_running_loop()
        loop.remove_reader(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code  # so Popen's finaliser does not wait again
        # whatever the command left running in its group goes with it
        _killpg(proc.pid, signal.SIGKILL)
        self._exited[handle] = 128 - code if code < 0 else code
        self._changed.set()

    async def poll(self, *, handles: Sequence[str]) -> dict[str, Status]:
        """Exited or running, from what the pidfds told us; no system call per handle."""
        out: dict[str, Status] = {}
        for h in handles:
            if h in self._exited:
                out[h] = Status("exited", self._exited.pop(h))
            elif h in self._running:
                out[h] = Status("running")
            else:
                out[h] = Status("lost", message="not started by this runner")
        return out

    async def wait(self, *, timeout: float) -> None:
        """Sleep until a child exits (or `timeout`)."""
        if not self._changed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        self._changed.clear()

    async def cancel(self, *, handles: Sequence[str]) -> None:
        """SIGTERM to each attempt's process group, SIGKILL after a grace period (at once
        when the attempt was already asked to stop)."""
        loop = asyncio.get_running_loop()
        for h in handles:
            entry = self._running.get(h)
            if entry is None:
                continue
            pgid = entry[0].pid
            if h in self._stopping:
                _killpg(pgid, signal.SIGKILL)
                continue
            self._stopping.add(h)
            _killpg(pgid, signal.SIGTERM)
            loop.call_later(KILL_GRACE, self._kill_hard, h)

    def _kill_hard(self, handle: str) -> None:
        entry = self._running.get(handle)
        if entry is not None:
            _killpg(entry[0].pid, signal.SIGKILL)

    def logs(self, *, handle: str) -> tuple[Path, Path] | None:
        """The files the attempt's stdout and stderr were written to."""
        return self._logs.get(handle)

    def reclaim(self, *, handle: str) -> bool:
        """Kill the process group of an attempt whose runner died, if it still runs."""
        pid_text, _, key = handle.partition(":")
        if not pid_text.isdigit() or key.count("/") != 3:
            return False
        pid = int(pid_text)
        if not _is_attempt(pid, key):
            return False  # gone, or the pid now belongs to someone else
        _killpg(pid, signal.SIGKILL)
        return True

    async def close(self) -> None:
        """Kill anything still running (the engine cancels first; this is the safety net)."""
        loop = asyncio.get_running_loop()
        for proc, pidfd in self._running.values():
            _killpg(proc.pid, signal.SIGKILL)
            loop.remove_reader(pidfd)
            os.close(pidfd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)
            proc.returncode = -9
        self._running.clear()
