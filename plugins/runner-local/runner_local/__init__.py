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
import select
import shutil
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runner.contracts import Cluster, LaunchSpec, Status

__all__ = ["LocalExecutor"]

KILL_GRACE = 3.0
EOF_GRACE = 2.0  # how long output pipes may stay open after the process group is gone
_CHUNK = 1 << 16
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


class _Attempt:
    __slots__ = ("code", "handle", "pid", "pidfd", "streams")

    def __init__(self, handle: str, pid: int, pidfd: int) -> None:
        self.handle = handle
        self.pid = pid
        self.pidfd = pidfd
        self.code: int | None = None
        self.streams: list[_Stream] = []


class _Stream:
    """One of an attempt's output pipes and the log file it is copied to."""

    __slots__ = ("attempt", "fd", "file", "path")

    def __init__(self, attempt: _Attempt, fd: int, path: Path) -> None:
        self.attempt = attempt
        self.fd = fd
        self.path = path
        self.file = -1
        attempt.streams.append(self)


class LocalExecutor:
    """Runs attempts as child processes of the runner."""

    capabilities = frozenset({"event-driven", "process-groups"})

    def __init__(self, *, cluster: Cluster) -> None:
        self._cluster = cluster
        self._running: dict[str, _Attempt] = {}
        self._exited: dict[str, int] = {}
        self._stopping: set[str] = set()
        self._logs: dict[str, tuple[Path, Path]] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._failed_starts = itertools.count()
        self._base_env = dict(os.environ)
        self._which: dict[tuple[str, str], str] = {}
        self._epoll = select.epoll()
        self._epoll_watched = False
        self._watching: dict[int, tuple[Callable[[Any], None], Any]] = {}
        self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self._home = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    async def submit(self, *, spec: LaunchSpec) -> str:
        """Start the process; its pidfd and output pipes wake the event loop."""
        env = {**self._base_env, **spec.env}
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = self._spawn(spec.argv, env, spec.workdir, out_w, err_w)
        except (OSError, ValueError, IndexError) as e:
            os.close(out_r)
            os.close(err_r)
            return self._not_started(spec, e)
        finally:
            os.close(out_w)
            os.close(err_w)
        # the handle is stored by the engine; pid plus key lets a later runner tell this
        # process apart from an unrelated one that reused the pid
        handle = f"{pid}:{spec.key}"
        att = _Attempt(handle, pid, os.pidfd_open(pid))
        self._running[handle] = att
        self._logs[handle] = (spec.stdout, spec.stderr)
        self._watch_fd(att.pidfd, self._reap, att)
        for fd, path in ((out_r, spec.stdout), (err_r, spec.stderr)):
            os.set_blocking(fd, False)
            self._watch_fd(fd, self._drain, _Stream(att, fd, path))
        return handle

    def _watch_fd(self, fd: int, callback: Callable[[Any], None], arg: Any) -> None:
        """Call `callback(arg)` when `fd` is readable. The executor's own epoll holds every
        fd and the event loop watches only that one: registering three fds per process with
        asyncio costs about 0.1 ms, a tenth of the budget per instance."""
        if not self._epoll_watched:
            asyncio.get_running_loop().add_reader(self._epoll.fileno(), self._dispatch)
            self._epoll_watched = True
        self._epoll.register(fd, select.EPOLLIN)
        self._watching[fd] = (callback, arg)

    def _unwatch_fd(self, fd: int) -> None:
        self._epoll.unregister(fd)
        del self._watching[fd]

    def _dispatch(self) -> None:
        for fd, _ in self._epoll.poll(0):
            entry = self._watching.get(fd)
            if entry is not None:
                entry[0](entry[1])

    def _not_started(self, spec: LaunchSpec, e: Exception) -> str:
        """Report a program that cannot start like a shell would: 127 not found, 126 not
        executable, with the reason in the attempt's stderr."""
        handle = f"failed:{os.getpid()}:{next(self._failed_starts)}"
        code = 126 if getattr(e, "errno", None) in (errno.EACCES, errno.ENOEXEC) else 127
        if isinstance(e, OSError):
            name = getattr(e, "filename", None)
            what = spec.argv[0] if name in (None, spec.argv[0]) else name
            text = f"runner: cannot start {what!r}: {e.strerror}\n"
        else:
            text = f"runner: cannot start {spec.argv!r}: the command is empty or invalid\n"
        fd = os.open(spec.stderr, _LOG_FLAGS, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        self._exited[handle] = code
        self._logs[handle] = (spec.stdout, spec.stderr)
        self._wake()
        return handle

    def _spawn(
        self, argv: list[str], env: dict[str, str], workdir: Path, out: int, err: int
    ) -> int:
        """posix_spawn in a new session with stdin from /dev/null.

        Not subprocess.Popen: posix_spawn encodes the environment in C and costs about a tenth
        of a millisecond less per process, which is most of the runner's budget per instance.
        It has no working-directory argument, so the runner's own directory is switched around
        the call (nothing else runs in between: the event loop is single-threaded).
        """
        program = argv[0] if argv else ""
        if program and "/" not in program:
            # search the task's PATH once per program, not once per process
            path = env.get("PATH", os.defpath)
            found = self._which.get((program, path))
            if found is None:
                found = self._which[(program, path)] = shutil.which(program, path=path) or ""
            program = found or program
        actions = [
            (os.POSIX_SPAWN_DUP2, self._devnull, 0),
            (os.POSIX_SPAWN_DUP2, out, 1),
            (os.POSIX_SPAWN_DUP2, err, 2),
        ]
        os.chdir(workdir)
        try:
            return os.posix_spawnp(program, argv, env, file_actions=actions, setsid=True)
        finally:
            os.fchdir(self._home)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _drain(self, stream: _Stream) -> None:
        """Copy what the process wrote to its log file; the file is created by the first
        byte (creating two files per process costs more than running `true`)."""
        try:
            data = os.read(stream.fd, _CHUNK)
        except BlockingIOError:
            return
        if data:
            if stream.file < 0:
                stream.file = os.open(stream.path, _LOG_FLAGS, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(stream.file, view) :]
            return
        self._close_stream(stream)

    def _close_stream(self, stream: _Stream) -> None:
        if stream.fd < 0:
            return
        self._unwatch_fd(stream.fd)
        os.close(stream.fd)
        stream.fd = -1
        if stream.file >= 0:
            os.close(stream.file)
        stream.file = -1
        att = stream.attempt
        att.streams.remove(stream)
        self._maybe_done(att)

    def _reap(self, att: _Attempt) -> None:
        loop = asyncio.get_running_loop()
        self._unwatch_fd(att.pidfd)
        os.close(att.pidfd)
        _, status = os.waitpid(att.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        # whatever the command left running in its group goes with it
        _killpg(att.pid, signal.SIGKILL)
        att.code = 128 - code if code < 0 else code
        if att.streams:
            # a process outside the group may still hold the pipes: stop waiting after a while
            loop.call_later(EOF_GRACE, self._abandon_streams, att)
        self._maybe_done(att)

    def _abandon_streams(self, att: _Attempt) -> None:
        for stream in list(att.streams):
            self._drain(stream)
            self._close_stream(stream)

    def _maybe_done(self, att: _Attempt) -> None:
        """An attempt is over when its process exited and both logs are complete."""
        if att.code is None or att.streams or att.handle not in self._running:
            return
        del self._running[att.handle]
        self._stopping.discard(att.handle)
        self._exited[att.handle] = att.code
        self._wake()

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
        """Sleep until a child exits (or `timeout`); at once if one already has."""
        if self._exited:
            return
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        timer = loop.call_later(timeout, self._wake)
        try:
            await self._waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def cancel(self, *, handles: Sequence[str]) -> None:
        """SIGTERM to each attempt's process group, SIGKILL after a grace period (at once
        when the attempt was already asked to stop)."""
        loop = asyncio.get_running_loop()
        for h in handles:
            entry = self._running.get(h)
            if entry is None:
                continue
            pgid = entry.pid
            if h in self._stopping:
                _killpg(pgid, signal.SIGKILL)
                continue
            self._stopping.add(h)
            _killpg(pgid, signal.SIGTERM)
            loop.call_later(KILL_GRACE, self._kill_hard, h)

    def _kill_hard(self, handle: str) -> None:
        entry = self._running.get(handle)
        if entry is not None:
            _killpg(entry.pid, signal.SIGKILL)

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
        for att in list(self._running.values()):
            if att.code is None:
                _killpg(att.pid, signal.SIGKILL)
                self._unwatch_fd(att.pidfd)
                os.close(att.pidfd)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(att.pid, 0)
            for stream in list(att.streams):
                self._close_stream(stream)
        self._running.clear()
        if self._epoll_watched:
            asyncio.get_running_loop().remove_reader(self._epoll.fileno())
            self._epoll_watched = False
        self._epoll.close()
        for fd in (self._devnull, self._home):
            with contextlib.suppress(OSError):
                os.close(fd)
