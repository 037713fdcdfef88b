"""The `local` executor: each attempt a real process in its own process group on this machine.

Processes are started and reaped by a small spawner process (`spawner.py`), so the runner
never waits for an exec. Completion is event-driven: the spawner reports each exit over a
socket the event loop watches, so the runner wakes exactly when a process exits and never
sleeps to poll. Killing an attempt kills its whole process group (SIGTERM, then SIGKILL after
a grace period), so nothing it started is orphaned.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import marshal
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runner.contracts import Cluster, ExecutorBase, LaunchSpec, Status, public_env

__all__ = ["LocalExecutor"]

KILL_GRACE = 3.0
EOF_GRACE = 2.0  # how long output pipes may stay open after the process group is gone
_CHUNK = 1 << 16
_PACKET = 1 << 16  # largest request sent inline; the spawner reads up to this
TOKEN_VAR = "RUNNER_LOCAL_TOKEN"  # in every attempt's environment: which runner started it
_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


def _environ(pid: int) -> set[bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return set(f.read().split(b"\0"))
    except OSError:
        return set()


def _markers(token: str, key: str) -> set[bytes]:
    """The environment entries that tell an attempt's processes apart from any other: the
    starting runner's token (unique per runner process) and the attempt's key."""
    job, task, index, attempt = key.split("/")
    return {
        f"{TOKEN_VAR}={token}".encode(),
        f"RUNNER_JOB={job}".encode(),
        f"RUNNER_TASK={task}".encode(),
        f"RUNNER_INSTANCE_ID={index}".encode(),
        f"RUNNER_ATTEMPT={attempt}".encode(),
    }


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class _Attempt:
    # pid: None while the attempt waits in the spawner's queue
    __slots__ = ("code", "handle", "pid", "streams", "tag")

    def __init__(self, handle: str, tag: int) -> None:
        self.handle = handle
        self.tag = tag
        self.pid: int | None = None
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


class LocalExecutor(ExecutorBase):
    """Runs attempts as processes on this machine, started and reaped by a spawner process
    (`spawner.py`) so that the runner never waits for an exec."""

    capabilities = frozenset({"event-driven", "process-groups"})

    def __init__(self, *, cluster: Cluster) -> None:
        self._cluster = cluster
        self._running: dict[str, _Attempt] = {}
        self._by_tag: dict[int, _Attempt] = {}
        self._exited: dict[str, Status] = {}
        self._stopping: set[str] = set()
        self._logs: dict[str, tuple[Path, Path]] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._tags = itertools.count()
        # what instances inherit: the runner's environment without its storage secrets
        self._base_env = public_env()
        self._which: dict[tuple[str, str], str] = {}
        self._epoll = select.epoll()
        self._epoll_watched = False
        self._watching: dict[int, tuple[Callable[[Any], None], Any]] = {}
        self._spawner: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._token = secrets.token_hex(8)
        self._handle_prefix = f"{self._token}."
        self._slots = cluster.slots or os.cpu_count() or 1
        # the engine may hand over this many attempts beyond the slots: the spawner starts
        # each as soon as a slot frees, so a slot never waits for a round of the engine
        self.prefetch = self._slots

    async def submit(self, *, spec: LaunchSpec) -> str:
        """Ask the spawner to start the process; its exit and output wake the event loop."""
        sock = self._sock or self._start_spawner()
        tag = next(self._tags)
        # the handle is stored in the state; the key lets a later runner find the attempt's
        # processes by their environment should this runner die
        handle = f"{self._handle_prefix}{tag}:{spec.key}"
        workdir = os.path.abspath(spec.workdir)
        env = {k: v for k, v in spec.env.items() if self._base_env.get(k) != v}
        env[TOKEN_VAR] = self._token
        try:
            request = marshal.dumps(
                ("spawn", tag, self._program(spec.argv, env), list(spec.argv), env, workdir)
            )
        except ValueError as e:  # not strings: nothing a process could be started with
            return self._not_started(handle, spec, f"runner: cannot start {spec.argv!r}: {e}")
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            self._send(sock, request, [out_w, err_w])
        except OSError as e:
            os.close(out_r)
            os.close(err_r)
            return self._not_started(handle, spec, f"runner: the local spawner failed: {e}")
        finally:
            os.close(out_w)
            os.close(err_w)
        att = _Attempt(handle, tag)
        self._running[handle] = att
        self._by_tag[tag] = att
        self._logs[handle] = (spec.stdout, spec.stderr)
        for fd, path in ((out_r, spec.stdout), (err_r, spec.stderr)):
            os.set_blocking(fd, False)
            self._watch_fd(fd, self._drain, _Stream(att, fd, path))
        return handle

    def _program(self, argv: Sequence[str], env: dict[str, str]) -> str:
        """The program to run, searched in the task's PATH once per program, not once per
        process."""
        program = argv[0] if argv else ""
        if program and "/" not in program:
            path = env.get("PATH", self._base_env.get("PATH", os.defpath))
            found = self._which.get((program, path))
            if found is None:
                found = self._which[(program, path)] = shutil.which(program, path=path) or ""
            program = found or program
        return program

    def _start_spawner(self) -> socket.socket:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mine.set_inheritable(False)
        self._spawner = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                str(Path(__file__).with_name("spawner.py")),
                str(theirs.fileno()),
                str(self._slots),
            ],
            pass_fds=[theirs.fileno()],
            env=self._base_env,
            stdin=subprocess.DEVNULL,
            # its own session: a Ctrl-C at the terminal is the runner's to handle, not its
            start_new_session=True,
        )
        theirs.close()
        self._sock = mine
        self._watch_fd(mine.fileno(), self._receive, mine)
        return mine

    @staticmethod
    def _send(sock: socket.socket, data: bytes, fds: list[int]) -> None:
        if len(data) <= _PACKET:
            socket.send_fds(sock, [data], fds)
            return
        # too big for one packet (a huge command line): hand over a memfd holding it
        memfd = os.memfd_create("runner-spawn", os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(memfd, view) :]
            os.lseek(memfd, 0, os.SEEK_SET)
            socket.send_fds(sock, [b"@"], [*fds, memfd])
        finally:
            os.close(memfd)

    def _receive(self, sock: socket.socket) -> None:
        """What the spawner reports: attempts started, failed to start, exited."""
        while True:
            try:
                data = sock.recv(_PACKET, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except ConnectionResetError:
                data = b""
            if not data:
                self._spawner_gone()
                return
            msg = marshal.loads(data)
            att = self._by_tag.get(msg[1])
            if att is None:
                continue
            if msg[0] == "started":
                att.pid = msg[2]
                self._wake()
            elif msg[0] == "exited":
                code = os.waitstatus_to_exitcode(msg[2])
                self._exit(att, 128 - code if code < 0 else code)
            elif msg[0] == "failed":
                _, _, err, reason, name = msg
                # like a shell: 126 not executable, 127 not found
                code = 126 if err in (errno.EACCES, errno.ENOEXEC) else 127
                what = name
                self._write_stderr(att.handle, f"runner: cannot start {what!r}: {reason}\n")
                self._exit(att, code)

    def _exit(self, att: _Attempt, code: int) -> None:
        att.code = code
        del self._by_tag[att.tag]
        if att.streams:
            # a process outside the group may still hold the pipes: stop waiting after a while
            asyncio.get_running_loop().call_later(EOF_GRACE, self._abandon_streams, att)
        self._maybe_done(att)

    def _spawner_gone(self) -> None:
        """The spawner died (it never should): what it ran is orphaned, so kill it, and
        report those attempts lost; the next submit starts a new spawner."""
        if self._sock is not None:
            self._unwatch_fd(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._spawner is not None:
            self._spawner.wait()
            self._spawner = None
        for att in list(self._by_tag.values()):
            if att.pid is not None:
                _killpg(att.pid, signal.SIGKILL)
            del self._by_tag[att.tag]
            for stream in list(att.streams):
                self._close_stream(stream, done=False)
            self._running.pop(att.handle, None)
            self._stopping.discard(att.handle)
            self._exited[att.handle] = Status("lost", message="the local spawner process died")
        self._wake()

    def _watch_fd(self, fd: int, callback: Callable[[Any], None], arg: Any) -> None:
        """Call `callback(arg)` when `fd` is readable. The executor's own epoll holds every
        fd and the event loop watches only that one: registering fds one by one with
        asyncio costs about 0.1 ms per process, a tenth of the budget per instance."""
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

    def _write_stderr(self, handle: str, text: str) -> None:
        fd = os.open(self._logs[handle][1], _LOG_FLAGS, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def _not_started(self, handle: str, spec: LaunchSpec, text: str) -> str:
        self._logs[handle] = (spec.stdout, spec.stderr)
        self._write_stderr(handle, text + "\n")
        self._exited[handle] = Status("exited", 127)
        self._wake()
        return handle

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

    def _close_stream(self, stream: _Stream, *, done: bool = True) -> None:
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
        if done:
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
        self._exited[att.handle] = Status("exited", att.code)
        self._wake()

    async def poll(self, *, handles: Sequence[str]) -> dict[str, Status]:
        """Exited or running, from what the spawner told us; no system call per handle."""
        out: dict[str, Status] = {}
        for h in handles:
            if h in self._exited:
                out[h] = self._exited.pop(h)
            elif h in self._running:
                out[h] = Status("queued" if self._running[h].pid is None else "running")
            else:
                out[h] = Status("lost", message="not started by this runner")
        return out

    async def wait(self, *, timeout: float) -> None:
        """Sleep until an attempt ends (or `timeout`); at once if one already has."""
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

    def _signal(self, att: _Attempt, sig: int) -> None:
        if self._sock is not None and att.code is None:
            with contextlib.suppress(OSError):
                self._sock.send(marshal.dumps(("kill", att.tag, int(sig))))

    async def cancel(self, *, handles: Sequence[str]) -> None:
        """SIGTERM to each attempt's process group, SIGKILL after a grace period (at once
        when the attempt was already asked to stop)."""
        loop = asyncio.get_running_loop()
        for h in handles:
            att = self._running.get(h)
            if att is None:
                continue
            if h in self._stopping:
                self._signal(att, signal.SIGKILL)
                continue
            self._stopping.add(h)
            self._signal(att, signal.SIGTERM)
            loop.call_later(KILL_GRACE, self._kill_hard, h)

    def _kill_hard(self, handle: str) -> None:
        att = self._running.get(handle)
        if att is not None:
            self._signal(att, signal.SIGKILL)

    def logs(self, *, handle: str) -> tuple[Path, Path] | None:
        """The files the attempt's stdout and stderr were written to."""
        return self._logs.get(handle)

    def reclaim(self, *, handle: str) -> bool:
        """Kill what is left of an attempt whose runner died: every process started with the
        attempt's environment (its own and its children's process groups), found in /proc.
        A pid alone would not do: it may have been reused since."""
        prefix, _, key = handle.partition(":")
        token = prefix.partition(".")[0]
        if key.count("/") != 3 or not token:
            return False
        wanted = _markers(token, key)
        mine = os.getpgrp()
        groups = set()
        for name in os.listdir("/proc"):
            if name.isdigit() and wanted <= _environ(int(name)):
                with contextlib.suppress(ProcessLookupError):
                    groups.add(os.getpgid(int(name)))
        groups.discard(mine)
        for pgid in groups:
            _killpg(pgid, signal.SIGKILL)
        return bool(groups)

    async def close(self) -> None:
        """Kill anything still running (the engine cancels first; this is the safety net)
        and stop the spawner once it has reaped everything."""
        for att in list(self._by_tag.values()):
            self._signal(att, signal.SIGKILL)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.send(marshal.dumps(("quit",)))
            self._unwatch_fd(self._sock.fileno())
            if self._spawner is not None:
                try:  # what it still ran was just killed: this takes milliseconds
                    self._spawner.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._spawner.kill()
                    self._spawner.wait()
            self._sock.close()
            self._sock = None
            self._spawner = None
        for att in list(self._running.values()):
            for stream in list(att.streams):
                self._close_stream(stream, done=False)
        self._running.clear()
        self._by_tag.clear()
        if self._epoll_watched:
            asyncio.get_running_loop().remove_reader(self._epoll.fileno())
            self._epoll_watched = False
        self._epoll.close()
